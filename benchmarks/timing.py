"""What the benchmark scripts share: a per-step timer, the machine's name, a results writer, and how long a
benchmark's run was trained."""

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


SAMPLING_KEYS = frozenset({"sampler", "sampling_steps", "guidance", "frame_lag"})  # read at sampling, not training


def trained_for(run_dir: Path, config, *, sampling_may_differ: bool = False) -> float:
    """Seconds of training in run_dir's last checkpoint when it was trained from this very config (0 otherwise),
    so that a run trained before a failed scoring is scored, not trained again; with sampling_may_differ the
    model's sampling settings (SAMPLING_KEYS) may differ, for a benchmark that samples with the config's own."""
    from aigckit.config import to_dict
    from aigckit.evaluation.evaluate import run_config

    checkpoints = sorted((run_dir / "checkpoints").glob("step-*"))
    if not checkpoints:
        return 0.0
    asked, saved = to_dict(config), to_dict(run_config(run_dir))  # saved: resolved (sizes filled in, "auto" chosen)
    if any(saved[part].get(key) != value for part in asked for key, value in asked[part].items()
           if value is not None and value != "auto"
           and not (sampling_may_differ and part == "model" and key in SAMPLING_KEYS)):
        return 0.0
    return json.loads(checkpoints[-1].joinpath("training_state.json").read_text())["elapsed_seconds"]
