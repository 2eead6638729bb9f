"""Which arithmetic to compute in: bf16 autocast only where the device runs bf16 natively and fast.

`auto` (the default for training and inference) picks bf16 on a CUDA device that supports it, and on a CPU only
when (1) its instruction set has native bf16 (AVX-512-BF16 or AMX, as oneDNN reports it) and (2) a short measured
probe confirms that bf16 matmuls really are faster than fp32 there; fp32 everywhere else. On a CPU without native
bf16, autocast emulates it: measured on an AVX2-only AMD EPYC, a 1024^2 bf16 matmul ran at 0.9 GFLOP/s against
113 in fp32, and a diffusion model trained 10x slower. The probe's result is cached per machine.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Literal

import torch

from .errors import AigcError
from .flops import time_matmul
from .machine import cached_measurement, cpu_name, device_key

__all__ = ["Precision", "FP32", "resolve_precision", "bf16_speedup", "native_bf16", "MIN_BF16_SPEEDUP"]

PrecisionName = Literal["auto", "fp32", "bf16"]
MIN_BF16_SPEEDUP = 1.3  # auto takes bf16 only if its matmuls are at least this much faster than fp32


@dataclass(frozen=True)
class Precision:
    """The precision chosen for a device: 'fp32' or 'bf16' (autocast), what was asked for, and why."""

    name: Literal["fp32", "bf16"]
    requested: PrecisionName
    reason: str
    warning: str | None = None  # set when an explicit bf16 will run slowly here

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """The autocast dtype, or None for plain fp32."""
        return torch.bfloat16 if self.name == "bf16" else None

    def autocast(self, device: torch.device | str) -> contextlib.AbstractContextManager:
        """A context in which forward passes run in this precision."""
        device_type = torch.device(device).type
        if self.name == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type, dtype=torch.bfloat16)

    def describe(self) -> str:
        """One line for the user: 'precision: bf16 (auto: ...)'."""
        return f"precision: {self.name} ({self.requested}: {self.reason})"


FP32 = Precision("fp32", "fp32", "as configured")


def native_bf16(device: torch.device) -> bool:
    """Whether the device has bf16 arithmetic in hardware (not emulated)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        # oneDNN answers from the CPU's instruction set (AVX-512-BF16 / AMX) and its ONEDNN_MAX_CPU_ISA cap
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def _measure_speedup(device: torch.device) -> float:
    # 512^2 first: where bf16 is emulated one such matmul takes ~0.2 s (a 1024^2 one seconds), and it already
    # shows the slowdown (below 512 the emulation is not yet the bottleneck and looks far less slow)
    fp32, bf16 = time_matmul(device, torch.float32, 512, repeats=3), time_matmul(device, torch.bfloat16, 512, repeats=1)
    if bf16 > fp32:
        return fp32 / bf16
    fp32, bf16 = (time_matmul(device, dtype, 1024, repeats=5) for dtype in (torch.float32, torch.bfloat16))
    return fp32 / bf16


def bf16_speedup(device: torch.device | str = "cpu") -> float:
    """How many times faster a bf16 matmul runs than an fp32 one on `device` (measured once, then cached)."""
    device = torch.device(device)
    return cached_measurement("bf16_speedup", device_key(device), lambda: _measure_speedup(device))


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_name()} ({torch.backends.cpu.get_cpu_capability()})"


def resolve_precision(requested: PrecisionName, device: torch.device | str) -> Precision:
    """Choose the precision for `device`: 'auto' by hardware and a measured probe; 'fp32'/'bf16' as asked."""
    device = torch.device(device)
    if requested not in ("auto", "fp32", "bf16"):
        raise AigcError(f"unknown precision {requested!r}; use auto, fp32 or bf16")
    if requested == "fp32":
        return Precision("fp32", requested, "as configured")
    native = native_bf16(device)
    if device.type != "cpu":
        if requested == "bf16" or native:
            reason = "as configured" if requested == "bf16" else f"{_device_name(device)} supports bf16"
            return Precision("bf16", requested, reason)
        return Precision("fp32", requested, f"{_device_name(device)} has no native bf16")
    speedup = bf16_speedup(device)
    measured = f"a bf16 matmul measured {speedup:.2g}x the speed of fp32 here"
    if requested == "bf16":
        warning = None
        if not native or speedup < 1.0:
            why = "which has no native bf16" if not native else "where bf16 is slower than fp32"
            warning = (f"bf16 requested on {_device_name(device)}, {why}: {measured} ({1 / speedup:.2g}x slower); "
                       f"use precision auto or fp32")
        return Precision("bf16", requested, "as configured", warning)
    if not native:
        return Precision("fp32", requested, f"{_device_name(device)} has no native bf16 ({measured})")
    if speedup < MIN_BF16_SPEEDUP:
        return Precision("fp32", requested, f"{_device_name(device)} has native bf16, but {measured}, "
                                            f"less than the {MIN_BF16_SPEEDUP}x that pays for the lost precision")
    return Precision("bf16", requested, f"{_device_name(device)} runs bf16 natively; {measured}")
