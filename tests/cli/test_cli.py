import pytest
from typer.testing import CliRunner

from aigckit.cli import app
from aigckit.data import DATASETS
from aigckit.family import FAMILIES

runner = CliRunner()
CONFIG = "configs/dcgan-digits.yaml"
TINY = ["model.preset=tiny", "data.image_size=8", "train.batch_size=16", "train.max_steps=3"]


@pytest.mark.parametrize("override, message", [
    ("train.max_stepz=5", "error: train.max_stepz: unknown key; did you mean train.max_steps?"),
    ("train.batch_size=big", "error: train.batch_size: expected int, got 'big'"),
    ("train.max_steps=-1", "error: train.max_steps: must be positive, got -1"),
    ("data.name=mnsit", "error: data.name: unknown dataset 'mnsit'; did you mean 'mnist'?"),
])
def test_config_errors_are_one_line_exit_2_and_write_nothing(tmp_path, override, message):
    result = runner.invoke(app, ["train", CONFIG, *TINY, override, "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message)
    assert not (tmp_path / "run").exists()


def test_train_then_sample_then_resume(tmp_path):
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", CONFIG, *TINY, "--run-dir", str(run), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert (run / "config.yaml").is_file() and (run / "metrics.csv").is_file()
    assert (run / "checkpoints" / "step-000003" / "model.safetensors").is_file()
    assert (run / "samples" / "step-000003.png").is_file()

    result = runner.invoke(app, ["sample", str(run), "--n", "10", "--labels", "0,1,2,3,4,5,6,7,8,9", "--seed", "1",
                                 "--out", str(tmp_path / "grid.png")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "grid.png").stat().st_size > 0

    result = runner.invoke(app, ["sample", str(run), "--labels", "12", "--out", str(tmp_path / "bad.png")])
    assert result.exit_code == 2 and "labels must be in 0..9" in result.stderr
    assert not (tmp_path / "bad.png").exists()

    result = runner.invoke(app, ["train", CONFIG, *TINY, "--run-dir", str(run)])
    assert result.exit_code == 2 and "--resume" in result.stderr
    result = runner.invoke(app, ["train", CONFIG, *TINY[:-1], "train.max_steps=5", "--run-dir", str(run),
                                 "--resume", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert (run / "checkpoints" / "step-000005").is_dir()


def test_sample_reports_a_missing_or_empty_run_in_one_line(tmp_path):
    result = runner.invoke(app, ["sample", str(tmp_path / "nothing")])
    assert result.exit_code == 2 and "does not exist" in result.stderr
    result = runner.invoke(app, ["sample", str(tmp_path)])
    assert result.exit_code == 2 and "has no checkpoints" in result.stderr


def test_listings_have_one_line_per_registered_name():
    models = runner.invoke(app, ["models"]).stdout.strip().splitlines()
    assert [line.split()[0] for line in models] == [m for f in FAMILIES for m in FAMILIES.get(f).models]
    datasets = runner.invoke(app, ["datasets"]).stdout.strip().splitlines()
    assert [line.split()[0] for line in datasets] == DATASETS.names()
    assert all(len(line.split()) > 1 for line in models + datasets), "every name has a description"


def test_sample_a_diffusion_run_with_sampler_steps_and_guidance(trained_diffusion, tmp_path):
    out = tmp_path / "grid.png"
    result = runner.invoke(app, ["sample", str(trained_diffusion), "--n", "4", "--labels", "3", "--sampler", "ddim",
                                 "--steps", "5", "--eta", "0", "--guidance", "2", "--seed", "0", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 0
    result = runner.invoke(app, ["sample", str(trained_diffusion), "--sampler", "euler", "--out", str(out)])
    assert result.exit_code == 2 and "unknown sampler 'euler'" in result.stderr


def test_sampler_options_are_refused_for_a_gan(tmp_path):
    run = tmp_path / "gan"
    assert runner.invoke(app, ["train", CONFIG, *TINY, "--run-dir", str(run), "--no-progress"]).exit_code == 0
    result = runner.invoke(app, ["sample", str(run), "--steps", "5", "--out", str(tmp_path / "x.png")])
    assert result.exit_code == 2 and "steps does not apply to dcgan models" in result.stderr
