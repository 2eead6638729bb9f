import json

import pytest
from typer.testing import CliRunner

from aigckit.cli import app
from aigckit.config import load_config
from aigckit.evaluation.evaluate import evaluate_run, evaluate_sampler
from aigckit.evaluation.report import compare_runs
from aigckit.training import Trainer

runner = CliRunner()


@pytest.mark.slow
def test_eval_json_has_the_documented_keys_and_writes_metrics(trained_diffusion, eval_cache, monkeypatch):
    monkeypatch.setenv("AIGCKIT_CACHE", str(eval_cache))
    result = runner.invoke(app, ["eval", str(trained_diffusion), "--n", "200", "--json", "--sweep", "5,10"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    for key in ("fid", "kid_mean", "kid_std", "precision", "recall", "density", "coverage", "extractor", "n_samples"):
        assert key in metrics
    assert metrics["n_samples"] == 200 and metrics["weights_sha256"] and metrics["sampler"]["steps"] == 20
    assert metrics["conditional_accuracy"]["overall"] > 0.3
    assert metrics["likelihood"]["bits_per_dim"] > 0 and metrics["likelihood"]["discretisation"] == "8-bit"
    assert metrics["likelihood"]["bound"].startswith("DDPM variational bound") and metrics["likelihood"]["dims"] == 64
    assert metrics["manifold_points"] == {"real": metrics["n_real"], "fake": 200,
                                          "sampling": "seeded uniform sample of at most 5000 per side"}
    assert metrics["classifier_scores_left_out"] is None and metrics["channels"] == 1
    assert {(r["sampler"], r["steps"]) for r in metrics["sweep"]} == {
        (s, n) for s in ("ddpm", "ddim", "dpm-solver++") for n in (5, 10)}
    assert json.loads((trained_diffusion / "eval" / "metrics.json").read_text())["fid"] == metrics["fid"]
    assert (trained_diffusion / "eval" / "nearest-training-images.png").is_file()

    page = compare_runs([trained_diffusion], trained_diffusion.parent / "report").read_text()
    assert "data:image/png;base64" in page and f"{metrics['fid']:.4g}" in page


@pytest.mark.slow
def test_fid_ranks_a_trained_model_above_the_same_model_at_its_first_step(trained_diffusion, eval_cache, tmp_path):
    config = load_config(trained_diffusion / "config.yaml", ["train.max_steps=1"])
    Trainer(config, tmp_path / "first-step", show_progress=False).fit()
    scores = {name: evaluate_run(run, n=300, cache_dir=eval_cache, with_likelihood=False, steps=10)["fid"]
              for name, run in (("trained", trained_diffusion), ("first step", tmp_path / "first-step"))}
    assert scores["trained"] < 0.5 * scores["first step"], scores


def test_eval_errors_are_one_line(tmp_path):
    result = runner.invoke(app, ["eval", str(tmp_path), "--extractor", "clip"])
    assert result.exit_code == 2 and "must be one of evaluator, inception" in result.stderr
    result = runner.invoke(app, ["eval", str(tmp_path)])
    assert result.exit_code == 2 and "no config.yaml" in result.stderr


@pytest.mark.slow
def test_a_sweep_cell_samples_at_the_guidance_asked_for(trained_diffusion, eval_cache):
    cells = {g: evaluate_sampler(trained_diffusion, sampler="ddim", steps=10, n=200, guidance=g, cache_dir=eval_cache)
             for g in (1.0, 4.0)}
    default = evaluate_sampler(trained_diffusion, sampler="ddim", steps=10, n=200, cache_dir=eval_cache)
    assert [cells[g]["guidance"] for g in (1.0, 4.0)] == [1.0, 4.0]
    assert default["guidance"] == load_config(trained_diffusion / "config.yaml", []).model.guidance
    assert cells[1.0]["fid"] != cells[4.0]["fid"]  # the guided samples differ
