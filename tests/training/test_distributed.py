"""Data-parallel training in two CPU processes (gloo) through Accelerate's DDP, by torchrun and by the CLI."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from aigckit.checkpoint import latest_checkpoint

HERE = Path(__file__).parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1",
       "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")]))}


def run(*args: str, processes: int, check: bool = True) -> subprocess.CompletedProcess:
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"] if processes > 1 else []
    result = subprocess.run([sys.executable, *launcher, str(HERE / "parallel_run.py"), *args], env=ENV,
                            capture_output=True, text=True, timeout=600)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def assert_close(expected: dict, actual: dict, tolerance: float, what: str) -> None:
    assert expected.keys() == actual.keys()
    for key in expected:
        if expected[key].is_floating_point():
            torch.testing.assert_close(actual[key], expected[key], rtol=tolerance, atol=tolerance,
                                       msg=lambda m, key=key: f"{what}: {key}: {m}")
        else:
            assert torch.equal(actual[key], expected[key]), f"{what}: {key}"


@pytest.mark.slow
def test_two_processes_at_batch_b_equal_one_process_at_2b(tmp_path):
    """GAN, VAE, diffusion and GPT: DDP through accelerator.prepare (and, for 2 x 4 x 2, Accelerate's no_sync on
    the first micro-batch of each step) gives the weights of one process at the whole batch."""
    two = run("equivalence", str(tmp_path / "two"), "8", "1", processes=2).stdout
    accumulated = run("equivalence", str(tmp_path / "accum"), "4", "2", processes=2).stdout
    run("equivalence", str(tmp_path / "one"), "16", "1", processes=1)
    for family in ("gan", "vae", "diffusion", "gpt"):
        assert f"{family}: rank 1 of 2 done, DDP True" in two and f"{family}: rank 1 of 2 done, DDP True" in accumulated
        one = load_file(tmp_path / "one" / f"{family}-rank0.safetensors")
        for label, folder in (("2 x 8", "two"), ("2 x 4 x 2 micro-batches", "accum")):
            rank0 = load_file(tmp_path / folder / f"{family}-rank0.safetensors")
            rank1 = load_file(tmp_path / folder / f"{family}-rank1.safetensors")
            assert_close(rank0, rank1, 0.0, f"{family}, {label}: rank 1 against rank 0")
            assert_close(one, rank0, 1e-5, f"{family}, {label}: against one process at 16")


@pytest.mark.slow
def test_a_killed_two_process_run_resumes_exactly(tmp_path):
    run("dcgan", str(tmp_path / "unbroken"), processes=2)
    crashed = run("dcgan", str(tmp_path / "broken"), "--die-at", "5", processes=2, check=False)
    assert crashed.returncode != 0
    assert latest_checkpoint(tmp_path / "broken" / "run").name == "step-000004"
    run("dcgan", str(tmp_path / "broken"), "--resume", processes=2)
    expected = {}
    for name in ("model", "training_state"):
        path = latest_checkpoint(tmp_path / "unbroken" / "run") / f"{name}.safetensors"
        expected[name] = load_file(path)
        actual = load_file(latest_checkpoint(tmp_path / "broken" / "run") / f"{name}.safetensors")
        assert_close(expected[name], actual, 0.0, name)
    rank0, rank1 = (load_file(tmp_path / "broken" / f"dcgan-rank{r}.safetensors") for r in (0, 1))
    assert_close(rank0, rank1, 0.0, "resumed: rank 1 against rank 0")  # batch norm averages: process 0's


@pytest.mark.slow
def test_fsdp_shards_the_gpt_trains_it_like_one_process_and_resumes_exactly(tmp_path):
    """Accelerate's FSDP2 (state set by hand: Accelerate enables FSDP on GPUs only) on two CPU processes."""
    whole = run("gpt", str(tmp_path / "fsdp"), "8", "--fsdp", processes=2).stdout
    assert "gpt: rank 1 of 2 done, FSDPGPT" in whole
    run("gpt", str(tmp_path / "one"), "16", processes=1)
    run("gpt", str(tmp_path / "broken"), "8", "--fsdp", "--die-at", "3", processes=2, check=False)
    assert latest_checkpoint(tmp_path / "broken" / "run").name == "step-000002"
    run("gpt", str(tmp_path / "broken"), "8", "--fsdp", "--resume", processes=2)

    def saved(folder: str, name: str) -> dict[str, torch.Tensor]:
        tensors = load_file(latest_checkpoint(tmp_path / folder / "run") / f"{name}.safetensors")
        return {k: v for k, v in tensors.items() if not k.startswith("rng.")}  # one process has one RNG state

    # the checkpoint holds whole tensors (gathered from the shards), which one process trained to the same values
    assert_close(saved("one", "model"), saved("fsdp", "model"), 1e-5, "FSDP against one process")
    assert_close(saved("one", "training_state"), saved("fsdp", "training_state"), 1e-5, "optimizer state")
    for name in ("model", "training_state"):
        assert_close(saved("fsdp", name), saved("broken", name), 0.0, f"resumed FSDP run: {name}")


def test_an_engine_that_cannot_run_is_refused_not_ignored(tmp_path):
    """Our FSDP config through the real `accelerate launch` on this CPU machine, and a DeepSpeed launch: one line
    each, no run, instead of training with plain DDP."""
    configs = HERE.parents[1] / "configs"
    train = ["train", str(configs / "gpt-pydoc.yaml"), "train.max_steps=1", "train.use_ema=false", "--no-progress"]
    fsdp = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                           str(configs / "accelerate" / "fsdp.yaml"), "--module", "aigckit", *train, "--run-dir",
                           str(tmp_path / "fsdp")], env=ENV, capture_output=True, text=True, timeout=300)
    deepspeed = subprocess.run([sys.executable, "-m", "aigckit", *train, "--run-dir", str(tmp_path / "deepspeed")],
                               env={**ENV, "ACCELERATE_USE_DEEPSPEED": "true"}, capture_output=True, text=True,
                               timeout=300)
    assert fsdp.returncode != 0 and deepspeed.returncode != 0
    assert "error: accelerate config: asks for FSDP, which Accelerate runs only on GPUs" in fsdp.stderr
    assert "asks for DeepSpeed" in deepspeed.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "fsdp" / "checkpoints").exists() and not (tmp_path / "deepspeed").exists()


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
