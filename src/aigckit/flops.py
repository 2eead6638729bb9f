"""Model FLOPs utilisation: achieved training FLOP/s over the measured matmul peak of this machine.

The peak is measured, not taken from a datasheet: the best of a few large square matmuls in the training
precision (bf16 tensors go through AMX on CPUs that have it), cached per device, precision and thread count.
"""

from __future__ import annotations

import json
import platform
import time

import torch

from .cache import default_cache_dir
from .checkpoint import atomic_write_text

__all__ = ["measured_peak_flops", "transformer_flops_per_token", "cpu_name"]


def transformer_flops_per_token(n_params: int, n_layer: int, n_embd: int, context: int) -> float:
    """Training FLOPs per token of a decoder-only Transformer: 6N for the weights (forward 2N, backward 4N)
    plus 12 * layers * width * context for attention scores and values (PaLM, appendix B)."""
    return 6.0 * n_params + 12.0 * n_layer * n_embd * context


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            return next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def _device_key(device: torch.device, dtype: torch.dtype) -> str:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"{cpu_name()}-{torch.get_num_threads()}threads"
    return f"{device.type}:{name}:{str(dtype).removeprefix('torch.')}:torch{torch.__version__}"


def _time_matmuls(device: torch.device, dtype: torch.dtype, size: int, repeats: int) -> float:
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    best = float("inf")
    for _ in range(repeats + 1):  # the first one warms up
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        torch.mm(a, b)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best


def measured_peak_flops(device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> float:
    """FLOP/s of the fastest of a few large matmuls on `device` in `dtype`, measured once and cached."""
    device = torch.device(device)
    path = default_cache_dir() / "peak-flops.json"
    key = _device_key(device, dtype)
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        cache = {}
    if key not in cache:
        size = 8192 if device.type == "cuda" else 2048
        cache[key] = _time_matmuls(device, dtype, size, repeats=10)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(cache, indent=2) + "\n")
    return float(cache[key])
