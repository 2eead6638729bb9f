"""precision=auto: bf16 only where the hardware runs it natively and measurably faster."""

import json
import os
import subprocess
import sys

import pytest
import torch
import yaml

from aigckit import precision as precision_module
from aigckit.errors import AigcError
from aigckit.precision import resolve_precision
from aigckit.training import Trainer
from helpers import tiny_config

# Environment variables that make this CPU behave like one without native bf16 (an AVX2-only AMD EPYC):
# PyTorch's own kernels, oneDNN and MKL are all capped at AVX2, so bf16 autocast is emulated there.
AVX2_ONLY = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}


def resolve_in_subprocess(requested: str, cache, env: dict[str, str]) -> dict:
    code = ("import json; from aigckit.precision import resolve_precision, native_bf16; import torch;"
            f"p = resolve_precision({requested!r}, 'cpu');"
            "print(json.dumps({'name': p.name, 'reason': p.reason, 'warning': p.warning,"
            " 'native': native_bf16(torch.device('cpu'))}))")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "AIGCKIT_CACHE": str(cache), **env},
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_cpu_without_native_bf16_trains_in_fp32_and_an_explicit_bf16_warns(tmp_path):
    auto = resolve_in_subprocess("auto", tmp_path, AVX2_ONLY)
    assert not auto["native"] and auto["name"] == "fp32" and "no native bf16" in auto["reason"]
    forced = resolve_in_subprocess("bf16", tmp_path, AVX2_ONLY)
    assert forced["name"] == "bf16" and "slower" in forced["warning"] and "use precision auto" in forced["warning"]


def test_auto_follows_the_hardware_and_the_probe(monkeypatch):
    cpu = torch.device("cpu")
    for native, speedup, expected in [(False, 5.0, "fp32"), (True, 1.1, "fp32"), (True, 3.0, "bf16")]:
        monkeypatch.setattr(precision_module, "native_bf16", lambda device, n=native: n)
        monkeypatch.setattr(precision_module, "bf16_speedup", lambda device, s=speedup: s)
        assert resolve_precision("auto", cpu).name == expected, (native, speedup)
    assert resolve_precision("fp32", cpu).name == "fp32"
    with pytest.raises(AigcError, match="unknown precision"):
        resolve_precision("fp16", cpu)


def test_the_probe_is_measured_once_per_machine(tmp_path, monkeypatch):
    monkeypatch.setenv("AIGCKIT_CACHE", str(tmp_path))
    first = precision_module.bf16_speedup("cpu")
    cached = json.loads((tmp_path / "measurements.json").read_text())
    assert [v for k, v in cached.items() if k.startswith("bf16_speedup|")] == [first] and first > 0
    assert precision_module.bf16_speedup("cpu") == first


def test_the_chosen_precision_and_its_reason_are_recorded_in_the_run(tmp_path, capsys):
    trainer = Trainer(tiny_config({"name": "dcgan"}), tmp_path, show_progress=False)
    text = (tmp_path / "config.yaml").read_text()
    first_line = text.splitlines()[0]
    assert first_line.startswith(f"# train.precision: {trainer.precision.name} (auto: ")
    assert yaml.safe_load(text)["train"]["precision"] == trainer.precision.name
    assert trainer.precision.describe() in capsys.readouterr().err


def test_inference_follows_the_same_rule_and_bf16_sampling_runs_under_autocast(tmp_path):
    from aigckit import load

    Trainer(tiny_config({"name": "diffusion", "conditional": True}, train={"max_steps": 3, "precision": "fp32"}),
            tmp_path / "run", show_progress=False).fit()
    assert load(tmp_path / "run").precision == resolve_precision("auto", "cpu")
    exact, rounded = load(tmp_path / "run", precision="fp32"), load(tmp_path / "run", precision="bf16")
    assert exact.precision.name == "fp32" and rounded.precision.name == "bf16"
    a, b = (p.sample(4, labels=[1, 2, 3, 4], seed=0, steps=3) for p in (exact, rounded))
    assert b.dtype == torch.float32 and not torch.equal(a, b)  # the network ran in bf16 ...
    assert (a - b).abs().mean() < 0.1  # ... and the sampler's arithmetic in fp32
    with pytest.raises(AigcError, match="unknown precision"):
        load(tmp_path / "run", precision="half")


def test_generation_in_bf16_leaves_no_autocast_behind(trained_char_gpt):
    from aigckit import load

    pipeline = load(trained_char_gpt, precision="bf16")
    pieces = pipeline.stream("The ", max_new_tokens=8, seed=0)
    next(pieces)
    assert not torch.is_autocast_enabled("cpu")  # between yields the caller's code runs in its own precision
    assert len("".join(pieces)) > 0
