"""Facts about the machine we run on, and one small cache of what was measured on it.

Machines change (Sapphire Rapids with AMX, AMD with AVX-512-BF16, AMD with AVX2 only), so nothing measured on one
is reused on another: every measurement is cached under a key naming the device, its instruction set as PyTorch
sees it, the thread count and the torch version.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Callable

import torch

from .atomic import atomic_write_text
from .cache import default_cache_dir

__all__ = ["cpu_name", "cpu_flags", "cpu_description", "device_key", "cached_measurement"]


def _cpuinfo_field(field: str) -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            return next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith(field)), None)
    except OSError:
        return None


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    return set((_cpuinfo_field("flags") or "").split())


def cpu_description() -> str:
    """Model name plus what matters for speed: the vector ISA PyTorch uses and the native bf16 units in use."""
    flags = cpu_flags()
    bf16 = [name for flag, name in (("avx512_bf16", "AVX-512-BF16"), ("amx_bf16", "AMX")) if flag in flags]
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():  # none, or capped (ONEDNN_MAX_CPU_ISA)
        bf16 = ["no native bf16"]
    return f"{cpu_name()} ({', '.join([torch.backends.cpu.get_cpu_capability(), *bf16])})"


def device_key(device: torch.device) -> str:
    """What identifies a device for cached measurements: name, ISA as PyTorch sees it, threads, torch version."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        onednn_bf16 = torch.ops.mkldnn._is_mkldnn_bf16_supported()  # False where oneDNN is capped below bf16
        name = (f"{cpu_name()}-{torch.backends.cpu.get_cpu_capability()}-onednn_bf16={onednn_bf16}-"
                f"{torch.get_num_threads()}threads")
    return f"{device.type}:{name}:torch{torch.__version__}"


def cached_measurement(kind: str, key: str, measure: Callable[[], float]) -> float:
    """The value measured for (kind, key) on this machine, measuring and caching it the first time."""
    path = default_cache_dir() / "measurements.json"
    try:
        cache = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        cache = {}
    entry = f"{kind}|{key}"
    if entry not in cache:
        cache[entry] = float(measure())
        atomic_write_text(path, json.dumps(cache, indent=2, sort_keys=True) + "\n")
    return float(cache[entry])
