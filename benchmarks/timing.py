"""What the benchmark scripts share: a per-step timer, the machine's name and a results writer."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from aigckit.machine import cpu_description


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
    return f"{cpu_description()}, {torch.get_num_threads()} threads"


RESULTS = Path(__file__).parent / "results"


def write_results(stem: str, results: dict, table: list[str]) -> None:
    """benchmarks/results/<stem>.json and <stem>.md (the table), and print the table."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / f"{stem}.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))
