"""The memorisation guard: the rule and distance of `aigckit eval`'s memorisation metric, at generation time."""

import json

import pytest
import torch
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from aigckit.cli import app
from aigckit.config import DataConfig
from aigckit.data import load_dataset
from aigckit.errors import AigcError
from aigckit.evaluation.metrics import memorisation
from aigckit.provenance.guard import NEAR_COPY_RATIO, MemorisationGuard
from aigckit.provenance.keys import KEY_ENV
from aigckit.serving import create_app
from aigckit.training import Trainer
from helpers import tiny_config


@pytest.fixture(autouse=True)
def private_config(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "guard-test-secret-0123456789")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("guard") / "vae"
    Trainer(tiny_config({"name": "conv-vae"}, train={"max_steps": 1, "use_ema": False, "precision": "fp32"}), folder,
            show_progress=False).fit()
    return folder


def test_flags_exactly_what_eval_flags(run):
    guard = MemorisationGuard.from_run(run, image_size=8)
    train = load_dataset(DataConfig(name="digits", image_size=8), "train").images
    assert torch.equal(guard.train, train) and NEAR_COPY_RATIO == pytest.approx(1 / 3)
    generator = torch.Generator().manual_seed(0)
    # training images, training images with a little noise (still near-copies) and ones with much noise (not)
    samples = torch.cat([train[:4], train[4:8] + 0.02 * torch.randn(4, 1, 8, 8, generator=generator),
                         (train[8:12] + 1.5 * torch.randn(4, 1, 8, 8, generator=generator)).clamp(-1, 1)])
    copies, distance = guard.near_copies(samples)
    reference = memorisation(samples, train)
    assert torch.equal(copies, reference["flagged"]) and guard.source == "computed from the training split"
    assert guard.typical_distance == reference["typical_train_nn_distance"]
    assert copies[:8].all() and not copies[8:].any() and (distance[:4] < 0.01).all()
    with pytest.raises(AigcError, match="shape"):
        guard.near_copies(torch.zeros(1, 3, 8, 8))


def test_threshold_from_the_runs_evaluation(run, tmp_path):
    (run / "eval").mkdir(exist_ok=True)
    (run / "eval" / "metrics.json").write_text(json.dumps(
        {"dataset": "digits", "image_size": 8, "memorisation": {"typical_train_nn_distance": 2.5}}))
    try:
        guard = MemorisationGuard.from_run(run, image_size=8)
        assert guard.typical_distance == 2.5 and guard.threshold == pytest.approx(2.5 / 3)
        assert guard.source.endswith("metrics.json")
        assert MemorisationGuard.from_run(run, image_size=16).source == "computed from the training split"  # other size
    finally:
        (run / "eval" / "metrics.json").unlink()


def test_sample_and_server_withhold_near_copies_and_count_them(run, tmp_path):
    # an evaluation whose typical distance makes every image a near-copy: the guard must withhold them all
    (run / "eval").mkdir(exist_ok=True)
    (run / "eval" / "metrics.json").write_text(json.dumps(
        {"dataset": "digits", "image_size": 8, "memorisation": {"typical_train_nn_distance": 1e6}}))
    try:
        out = tmp_path / "grid.png"
        result = CliRunner().invoke(app, ["sample", str(run), "--n", "3", "--guard", "--out", str(out)])
        assert result.exit_code == 2 and "withheld all 3 images" in result.stderr and not out.exists()
        assert CliRunner().invoke(app, ["sample", str(run), "--n", "3", "--out", str(out)]).exit_code == 0
        with TestClient(create_app(runs=[run], data_dir=tmp_path / "serve")) as client:
            guarded = client.post("/v1/images/generations", json={"model": "vae", "n": 3, "seed": 1, "guard": True})
            free = client.post("/v1/images/generations", json={"model": "vae", "n": 2, "seed": 1})
            metrics = client.get("/metrics").text
    finally:
        (run / "eval" / "metrics.json").unlink()
    assert guarded.status_code == 200 and guarded.json()["data"] == []
    assert guarded.json()["aigckit_guard"]["withheld"] == 3 and guarded.json()["aigckit_guard"]["withheld_seeds"] == [1, 2, 3]
    assert len(free.json()["data"]) == 2 and "aigckit_guard" not in free.json()
    assert 'aigckit_guard_withheld_total{model="vae"} 3.0' in metrics
