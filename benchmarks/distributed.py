"""Data-parallel training throughput: two processes (DDP over gloo, one thread each) against one process (two
threads) on the same cores, at the same total batch, through the real Trainer.

    python benchmarks/distributed.py [--rounds 2] [--steps 30]

Models: the DCGAN (base preset, 32x32, total batch 64), a class-conditional diffusion UNet (32-64-64 channels,
attention at 8x8; 32x32, total batch 64) and the GPT of configs/gpt-shakespeare-char-10min.yaml (4 x 128,
block 64, total batch 32), all on the bundled data (digits resized to 32x32; the pydoc text), so no files are needed.
One and two processes alternate round by round; each figure is the median step time over all timed steps (warm-up
steps dropped). Writes benchmarks/results/distributed.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from timing import StepTimer, machine, write_results

HERE = Path(__file__).parent
IMAGES = {"name": "digits", "image_size": 32}
MODELS = {
    "DCGAN": ({"name": "dcgan", "z_dim": 100, "base_channels": 64}, IMAGES, 64),
    "diffusion UNet": ({"name": "diffusion", "conditional": True, "base_channels": 32, "channel_mults": [1, 2, 2],
                        "num_res_blocks": 1, "attention_resolution": 8, "schedule": "cosine"}, IMAGES, 64),
    "GPT 4 x 128": ({"name": "gpt", "n_layer": 4, "n_head": 4, "n_embd": 128, "positions": "rotary", "bias": False},
                    {"name": "pydoc", "block_size": 64}, 32),
}


def worker(model: str, batch: int, steps: int, out: Path) -> None:
    """Train `model` for `steps` steps at `batch` per process; process 0 writes the step times to `out`."""
    from aigckit.config import config_from_dict
    from aigckit.training import Trainer

    model_config, data, _ = MODELS[model]
    config = config_from_dict({"model": model_config, "data": data, "train": {
        "max_steps": steps, "batch_size": batch, "use_ema": False, "log_every": 10_000, "sample_every": 10_000,
        "checkpoint_every": 10_000}})
    timer = StepTimer()
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(config, Path(run_dir) / "run", show_progress=False, extra_callbacks=[timer])
        trainer.fit()
    if trainer.accelerator.is_main_process:
        out.write_text(json.dumps({"times": timer.times, "precision": trainer.precision.name}))


def timed(model: str, processes: int, steps: int, warmup: int) -> tuple[list[float], str]:
    """Step times of one run with `processes` processes sharing the machine's threads, and its precision."""
    total = MODELS[model][2]
    threads = max(1, torch.get_num_threads() // processes)
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "times.json"
        launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"] \
            if processes > 1 else []
        subprocess.run([sys.executable, *launcher, str(Path(__file__).resolve()), "worker", model,
                        str(total // processes), str(warmup + steps), str(out)],
                       env={**os.environ, "OMP_NUM_THREADS": str(threads)}, check=True, capture_output=True)
        result = json.loads(out.read_text())
    return result["times"][warmup:], result["precision"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()

    rows, results = [], {}
    for model, (_, _, total) in MODELS.items():
        times: dict[int, list[float]] = {1: [], 2: []}
        for round_ in range(args.rounds):
            for processes in times:
                step_times, precision = timed(model, processes, args.steps, args.warmup)
                times[processes] += step_times
                print(f"{model}, round {round_ + 1}/{args.rounds}, {processes} process(es): median "
                      f"{statistics.median(times[processes]) * 1e3:.1f} ms/step so far", flush=True)
        one, two = (statistics.median(times[p]) for p in (1, 2))
        results[model] = {"total_batch": total, "precision": precision, "ms_per_step_1_process": one * 1e3,
                          "ms_per_step_2_processes": two * 1e3, "speedup": one / two,
                          "examples_per_second_1_process": total / one, "examples_per_second_2_processes": total / two}
        rows.append(f"| {model} | {total} | {precision} | {one * 1e3:.1f} | {two * 1e3:.1f} | {one / two:.2f}x |")

    command = "python benchmarks/distributed.py " + " ".join(sys.argv[1:])
    table = [f"Two processes (DDP, gloo, {torch.get_num_threads() // 2} thread each) against one process "
             f"({torch.get_num_threads()} threads), same total batch; {machine()}; `{command.strip()}`", "",
             "| model | total batch | precision | 1 process, ms/step | 2 processes, ms/step | speed-up |",
             "|---|---|---|---|---|---|", *rows]
    write_results("distributed", {"benchmark": "data-parallel training throughput, 2 processes vs 1",
                                  "machine": machine(), "torch": torch.__version__, "command": command.strip(),
                                  "steps_per_run": args.steps, "rounds": args.rounds, "results": results}, table)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        worker(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), Path(sys.argv[5]))
    else:
        main()
