"""DCGAN training throughput (images/s, 32x32, batch 64) in fp32 and bf16 autocast on this machine.

    python benchmarks/gan_throughput.py [--runs 5] [--steps 30]

Each run trains a fresh DCGAN (base preset: z 100, 64 base channels) through the real Trainer on the
bundled digits resized to 32x32; one step is a discriminator and a generator update on 64 images.
Precisions alternate run by run, and the figure is the median over all timed steps (this machine has
occasional ~1 s stalls, which a median ignores). Writes benchmarks/results/gan_throughput.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import torch

from aigckit.config import config_from_dict
from aigckit.training import Trainer
from timing import StepTimer, machine

RESULTS = Path(__file__).parent / "results"


def time_run(precision: str, steps: int, warmup: int) -> list[float]:
    """Seconds per step of one fresh training run, warm-up steps dropped."""
    config = config_from_dict({
        "model": {"name": "dcgan", "z_dim": 100, "base_channels": 64},
        "data": {"name": "digits", "image_size": 32},
        "train": {"max_steps": warmup + steps, "batch_size": 64, "precision": precision, "use_ema": False,
                  "log_every": 10_000, "sample_every": 10_000, "checkpoint_every": 10_000},
    })
    timer = StepTimer()
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(config, run_dir, show_progress=False, extra_callbacks=[timer])
        trainer.fit()
    return timer.times[warmup:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()

    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for run in range(args.runs):
        for precision in times:
            times[precision] += time_run(precision, args.steps, args.warmup)
            print(f"run {run + 1}/{args.runs} {precision}: median {statistics.median(times[precision]) * 1e3:.1f} "
                  f"ms/step so far", flush=True)

    results = {
        "benchmark": "DCGAN training throughput, 32x32, batch 64, one D and one G update per step",
        "machine": machine(),
        "torch": torch.__version__,
        "runs": args.runs,
        "timed_steps_per_run": args.steps,
    }
    for precision, values in times.items():
        median = statistics.median(values)
        results[precision] = {"median_ms_per_step": round(median * 1e3, 2), "images_per_s": round(64 / median, 1)}
    results["bf16_speedup"] = round(results["fp32"]["median_ms_per_step"] / results["bf16"]["median_ms_per_step"], 2)

    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "gan_throughput.json").write_text(json.dumps(results, indent=2) + "\n")
    table = ["| precision | ms / step (median) | images / s |", "|---|---|---|"]
    table += [f"| {p} | {results[p]['median_ms_per_step']} | {results[p]['images_per_s']} |" for p in times]
    (RESULTS / "gan_throughput.md").write_text("\n".join(table) + f"\n\nbf16 speed-up: {results['bf16_speedup']}x\n")
    print("\n".join(table))
    print(f"bf16 speed-up: {results['bf16_speedup']}x")


if __name__ == "__main__":
    main()
