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
