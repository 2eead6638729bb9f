"""A run killed at any moment and resumed ends with exactly the tensors of an unbroken run."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from aigckit.checkpoint import latest_checkpoint

CONFIG = Path(__file__).parents[2] / "configs" / "dcgan-digits.yaml"
OVERRIDES = ["model.preset=tiny", "data.image_size=8", "train.batch_size=16", "train.max_steps=300",
             "train.checkpoint_every=20", "train.sample_every=100", "train.log_every=10", "train.keep_checkpoints=0",
             "train.grad_clip=5.0", "train.warmup_steps=30", "train.lr_schedule=cosine"]


def aigckit_train(run_dir: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "aigckit", "train", str(CONFIG), *OVERRIDES, "--run-dir",
                             str(run_dir), "--no-progress", *extra], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)


def final_tensors(run_dir: Path) -> dict[str, torch.Tensor]:
    checkpoint = latest_checkpoint(run_dir)
    assert checkpoint.name == "step-000300"
    tensors = {}
    for name in ("model", "ema", "training_state"):
        tensors.update({f"{name}/{k}": v for k, v in load_file(checkpoint / f"{name}.safetensors").items()})
    return tensors


@pytest.mark.slow
def test_killed_and_resumed_run_equals_unbroken_run(tmp_path):
    unbroken = aigckit_train(tmp_path / "unbroken")
    broken = aigckit_train(tmp_path / "broken")
    deadline = time.time() + 120
    while not (tmp_path / "broken" / "checkpoints" / "step-000060").exists():  # kill mid-run, after a few saves
        assert broken.poll() is None and time.time() < deadline, broken.stdout.read().decode()
        time.sleep(0.01)
    broken.send_signal(signal.SIGKILL)
    broken.wait()
    assert latest_checkpoint(tmp_path / "broken").name != "step-000300"

    resumed = aigckit_train(tmp_path / "broken", "--resume")
    for process in (unbroken, resumed):
        output = process.communicate(timeout=300)[0].decode()
        assert process.returncode == 0, output

    expected, actual = final_tensors(tmp_path / "unbroken"), final_tensors(tmp_path / "broken")
    assert expected.keys() == actual.keys()
    for key in expected:
        assert torch.equal(expected[key], actual[key]), key
    steps = [line.split(",")[0] for line in (tmp_path / "broken" / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == [str(s) for s in range(10, 301, 10)]  # no step logged twice after the resume


class KillAt:
    """Raise KeyboardInterrupt at the end of the first step past `fraction` of the time budget (after that
    step's checkpoint is written), and record every learning-rate multiplier used."""

    def __init__(self, fraction: float | None = None) -> None:
        self.fraction, self.lrs = fraction, []

    def on_step_end(self, trainer) -> None:
        self.lrs.append(trainer._lr)
        if self.fraction is not None and trainer.elapsed >= self.fraction * trainer.config.train.max_minutes * 60:
            raise KeyboardInterrupt


def test_a_time_budget_killed_half_way_and_resumed_keeps_its_schedule_and_its_total_time(tmp_path):
    from aigckit.checkpoint import read_training_state
    from aigckit.training import Trainer
    from helpers import tiny_config

    budget = 0.05  # minutes: 3 s of training in all
    config = tiny_config({"name": "dcgan"}, train={"max_steps": 10**6, "max_minutes": budget, "lr_schedule": "cosine",
                                                   "min_lr_fraction": 0.1, "checkpoint_every": 1,
                                                   "keep_checkpoints": 2, "log_every": 10})
    first = KillAt(0.5)
    with pytest.raises(KeyboardInterrupt):
        Trainer(config, tmp_path, show_progress=False, extra_callbacks=[first]).fit()
    _, saved = read_training_state(latest_checkpoint(tmp_path))
    assert saved["elapsed_seconds"] >= 0.5 * budget * 60  # the checkpoint knows how much of the budget is spent

    second = KillAt()
    resumed = Trainer(config, tmp_path, resume=True, show_progress=False, extra_callbacks=[second])
    started = time.monotonic()
    resumed.fit()
    wall = time.monotonic() - started
    # the schedule continues where it stopped (cosine on the clock), instead of restarting at full LR
    assert second.lrs[0] <= first.lrs[-1] + 1e-9 and second.lrs[0] < 0.75
    assert second.lrs[-1] < 0.5
    # the resumed part gets only what is left of the budget, and the total is the budget
    assert resumed.elapsed >= budget * 60
    assert wall < budget * 60 - saved["elapsed_seconds"] + 1.0
    _, final = read_training_state(latest_checkpoint(tmp_path))
    assert final["elapsed_seconds"] == pytest.approx(resumed.elapsed)


def test_resuming_a_language_model_on_a_changed_corpus_is_refused(tmp_path):
    from aigckit.config import config_from_dict
    from aigckit.errors import DataError
    from aigckit.training import Trainer

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog. " * 40, encoding="utf-8")
    config = config_from_dict({"model": {"name": "gpt", "preset": "tiny"},
                               "data": {"name": "text", "root": str(corpus), "block_size": 16},
                               "train": {"max_steps": 2, "batch_size": 4, "use_ema": False}})
    Trainer(config, tmp_path / "run", show_progress=False).fit()
    Trainer(config, tmp_path / "run", resume=True, show_progress=False)  # the same text resumes
    corpus.write_text("the lazy dog jumps over the quick brown fox. " * 40, encoding="utf-8")  # same characters
    with pytest.raises(DataError, match="changed since"):
        Trainer(config, tmp_path / "run", resume=True, show_progress=False)
