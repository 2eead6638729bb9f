"""Model FLOPs utilisation: achieved training FLOP/s over the measured matmul peak of this machine.

The peak is measured, not taken from a datasheet: the best of a few large square matmuls in the training
precision (bf16 tensors go through AMX on CPUs that have it), cached per device, precision and thread count.
"""

from __future__ import annotations

import time

import torch

from .machine import cached_measurement, device_key

__all__ = ["measured_peak_flops", "transformer_flops_per_token", "time_matmul"]


def transformer_flops_per_token(n_params: int, n_layer: int, n_embd: int, context: int) -> float:
    """Training FLOPs per token of a decoder-only Transformer: 6N for the weights (forward 2N, backward 4N)
    plus 12 * layers * width * context for attention scores and values (PaLM, appendix B)."""
    return 6.0 * n_params + 12.0 * n_layer * n_embd * context


def time_matmul(device: torch.device, dtype: torch.dtype, size: int, repeats: int) -> float:
    """Seconds of the fastest of `repeats` (size x size) @ (size x size) matmuls, after one warm-up."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    best = float("inf")
    for _ in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        torch.mm(a, b)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


def _peak(device: torch.device, dtype: torch.dtype) -> float:
    # grow the matmul until one takes long enough to time well, so an emulated dtype (bf16 on an AVX2 CPU,
    # ~1 GFLOP/s) costs a fraction of a second instead of minutes at full size
    largest = 8192 if device.type == "cuda" else 2048
    size = 256
    while True:
        seconds = time_matmul(device, dtype, size, repeats=3 if size < largest else 10)
        if size >= largest or seconds > 0.1:
            return 2.0 * size**3 / seconds
        size *= 2


def measured_peak_flops(device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> float:
    """FLOP/s of the fastest of a few large matmuls on `device` in `dtype`, measured once and cached."""
    device = torch.device(device)
    key = f"{device_key(device)}:{str(dtype).removeprefix('torch.')}"
    return cached_measurement("peak_flops", key, lambda: _peak(device, dtype))
