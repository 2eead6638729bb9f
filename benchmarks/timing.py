"""What the benchmark scripts share: a per-step timer for the Trainer and a description of the machine."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import torch


class StepTimer:
    """Records the wall time of every training step (a Trainer callback)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.last = 0.0

    def on_fit_start(self, trainer) -> None:
        self.last = time.perf_counter()

    def on_step_end(self, trainer) -> None:
        now = time.perf_counter()
        self.times.append(now - self.last)
        self.last = now


def machine() -> str:
    """CPU model (or GPU name) and thread count."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            name = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{name}, {torch.get_num_threads()} threads"


RESULTS = Path(__file__).parent / "results"


def write_results(stem: str, results: dict, table: list[str]) -> None:
    """benchmarks/results/<stem>.json and <stem>.md (the table), and print the table."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / f"{stem}.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))
