"""Language-model training on tiny Shakespeare: nanoGPT parity, quality per CPU-minute, and MFU.

    python benchmarks/lm_training.py parity                      # configs/gpt-shakespeare-char.yaml, 2,000 iters
    python benchmarks/lm_training.py budget --minutes 10         # configs/gpt-shakespeare-char-10min.yaml
    python benchmarks/lm_training.py budget --minutes 10 --config configs/gpt-tang-poetry-char.yaml --name tang
    python benchmarks/lm_training.py mfu                         # 6 layers x 384, fp32 vs bf16

parity: trains nanoGPT's CPU recipe through our Trainer with --seeds seeds and reports the validation loss
(every non-overlapping window of the validation text, ~1,700 windows of 64) and the median ms per iteration.
Beside it, alternating in the same process, a bare PyTorch loop with nanoGPT train.py's steps (random windows, forward, cross-entropy, backward,
clip 1.0, AdamW, cosine LR) and the same network times what a hand-written loop costs on this machine.
budget: trains a config for a fixed wall time (train.max_minutes) and, in the same run and for the same time,
nanoGPT's CPU recipe (configs/gpt-shakespeare-char.yaml: 4 x 128, block 64, batch 12, lr 1e-3, fp32) as the bare
loop below, its cosine decay stretched over the budget (as if max_iters were set to what fits), and reports both
validation losses. To measure what a CPU without native bf16 does, run it with PyTorch, oneDNN and MKL capped at
AVX2 (and a separate cache, since cached probes are per machine):
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 AIGCKIT_CACHE=/tmp/avx2 \
        python benchmarks/lm_training.py budget --minutes 10 --name shakespeare-10min-avx2
mfu: model FLOPs utilisation against this machine's measured matmul peak, both precisions, alternating.
Results are merged into benchmarks/results/lm_training.json (and .md).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from aigckit.config import config_from_dict, load_config
from aigckit.data import load_dataset
from aigckit.evaluation.language import validation_loss
from aigckit.flops import measured_peak_flops
from aigckit.models.lm import LMFamily
from aigckit.training import Trainer
from aigckit.training.trainer import resolve_model_config
from aigckit.training.schedule import lr_factor
from timing import StepTimer, machine

RESULTS = Path(__file__).parent / "results"
REPO = Path(__file__).resolve().parent.parent


def train_and_evaluate(config, run_dir: Path) -> dict:
    """Train `config` with a step timer; the validation loss of the final weights."""
    timer = StepTimer()
    trainer = Trainer(config, run_dir, show_progress=False, extra_callbacks=[timer])
    started = time.perf_counter()
    trainer.fit()
    wall = time.perf_counter() - started
    model = (trainer.ema.model if trainer.ema is not None else trainer.model).eval()
    loss, tokens = validation_loss(model, load_dataset(trainer.config.data, "val").ids)
    mfu = [row["mfu"] for row in trainer.callbacks.callbacks[1].rows if "mfu" in row]
    times = timer.times[10:]  # the first steps warm up allocators and caches
    return {"steps": trainer.step, "precision": trainer.precision.describe(), "val_loss": round(loss, 4),
            "val_tokens": tokens,
            "median_ms_per_iter": round(statistics.median(times) * 1e3, 2),
            "tokens_per_sec": round(trainer.examples_per_step * trainer.tokens_per_example / statistics.median(times)),
            "median_mfu": round(statistics.median(mfu), 3) if mfu else None, "wall_minutes": round(wall / 60, 2)}


def bare_loop(config, *, steps: int | None = None, minutes: float | None = None) -> tuple[torch.nn.Module, list[float]]:
    """nanoGPT train.py's loop written by hand around the same network (random windows, forward, cross-entropy,
    backward, clip, AdamW, warm-up + cosine LR), for `steps` iterations or `minutes` of wall time; with a time
    budget the cosine follows the clock, so it ends at its floor when time runs out. Returns the model and the
    seconds of each iteration."""
    dataset = load_dataset(config.data, "train")
    family = LMFamily()
    model_config = resolve_model_config(config.model, dataset)
    torch.manual_seed(config.train.seed)
    model = family.build(model_config)
    optimizer = family.optimizers(model, model_config)["model"]
    ids = torch.from_numpy(dataset.ids.astype("int64"))
    tc, block = config.train, dataset.block_size
    times: list[float] = []
    started = time.perf_counter()
    for it in range(steps if steps is not None else 10**9):
        start = time.perf_counter()
        spent = (start - started) / (minutes * 60) if minutes else 0.0
        if spent >= 1.0:
            break
        if minutes is None:
            factor = lr_factor(it, warmup_steps=tc.warmup_steps, max_steps=tc.max_steps, schedule=tc.lr_schedule,
                               floor=tc.min_lr_fraction)
        else:  # warm-up by iterations, then the decay by the share of the time spent (in millionths)
            virtual = it if it < tc.warmup_steps else tc.warmup_steps + int(spent * 10**6)
            factor = lr_factor(virtual, warmup_steps=tc.warmup_steps, max_steps=tc.warmup_steps + 10**6,
                               schedule=tc.lr_schedule, floor=tc.min_lr_fraction)
        for group in optimizer.param_groups:
            group["lr"] = model_config.lr * factor
        starts = torch.randint(len(ids) - block - 1, (tc.batch_size,))
        windows = torch.stack([ids[s:s + block + 1] for s in starts])
        logits, _ = model(windows[:, :-1])
        loss = F.cross_entropy(logits.flatten(0, 1), windows[:, 1:].flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss.item()  # nanoGPT reads the loss every iteration it logs (log_interval=1 in the CPU recipe)
        times.append(time.perf_counter() - start)
    return model.eval(), times


def bare_loop_ms(config, steps: int) -> list[float]:
    """Seconds per iteration of the bare loop (after 10 warm-up iterations)."""
    return bare_loop(config, steps=steps)[1][10:]


def parity(args) -> dict:
    runs, reference = [], []
    for seed in range(args.seeds):
        config = load_config(REPO / "configs" / "gpt-shakespeare-char.yaml", [f"train.seed={seed}"])
        reference += bare_loop_ms(config, args.reference_steps)  # alternating: drift hits both sides
        with tempfile.TemporaryDirectory() as run_dir:
            runs.append(train_and_evaluate(config, Path(run_dir)))
        print(f"seed {seed}: {runs[-1]}", flush=True)
    losses = [r["val_loss"] for r in runs]
    return {"seeds": args.seeds, "val_loss_per_seed": losses, "val_loss_mean": round(statistics.mean(losses), 4),
            "val_loss_sd": round(statistics.stdev(losses), 4) if len(losses) > 1 else None,
            "val_tokens": runs[0]["val_tokens"],
            "median_ms_per_iter": round(statistics.median(r["median_ms_per_iter"] for r in runs), 2),
            "bare_loop_median_ms_per_iter": round(statistics.median(reference) * 1e3, 2),
            "median_mfu": statistics.median(r["median_mfu"] for r in runs),
            "nanogpt_anchor": {"val_loss_2000": 1.886, "ms_per_iter": 27, "val_estimate": "20 random batches",
                               "measured_on": "Sapphire Rapids, 2 vCPU"}}


def budget(args) -> dict:
    """Our preset and nanoGPT's recipe, each for args.minutes of training, one after the other in this process."""
    config = load_config(args.config, [f"train.max_minutes={args.minutes}"])
    with tempfile.TemporaryDirectory() as run_dir:
        ours = train_and_evaluate(config, Path(run_dir))
    print(f"ours: {ours}", flush=True)
    recipe_config = load_config(REPO / "configs" / "gpt-shakespeare-char.yaml", ["train.precision=fp32"])
    model, times = bare_loop(recipe_config, minutes=args.minutes)
    loss, tokens = validation_loss(model, load_dataset(recipe_config.data, "val").ids)
    recipe = {"steps": len(times), "val_loss": round(loss, 4), "val_tokens": tokens, "precision": "fp32",
              "median_ms_per_iter": round(statistics.median(times[10:]) * 1e3, 2)}
    print(f"nanoGPT recipe: {recipe}", flush=True)
    return {"config": os.path.relpath(Path(args.config).resolve(), REPO), "minutes": args.minutes, **ours,
            "nanogpt_recipe_same_run": recipe, "beats_nanogpt_recipe": ours["val_loss"] < recipe["val_loss"]}


def mfu(args) -> dict:
    results: dict[str, list[float]] = {"fp32": [], "bf16": []}
    ms: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for _ in range(args.rounds):
        for precision in results:
            config = config_from_dict({
                "model": {"name": "gpt", "n_layer": 6, "n_head": 6, "n_embd": 384, "bias": False},
                "data": {"name": "text", "root": args.root, "block_size": 128},
                "train": {"max_steps": args.steps, "batch_size": 32, "precision": precision, "use_ema": False,
                          "log_every": 1, "sample_every": 10**6, "checkpoint_every": 10**6},
            })
            timer = StepTimer()
            with tempfile.TemporaryDirectory() as run_dir:
                trainer = Trainer(config, run_dir, show_progress=False, extra_callbacks=[timer])
                trainer.fit()
            ms[precision] += timer.times[3:]
            results[precision].append(trainer.flops_per_step)
            device = trainer.accelerator.device
    out = {"shape": "6 layers x 384, 6 heads, batch 32, block 128", "device": str(device)}
    for precision in results:
        dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        peak = measured_peak_flops(device, dtype)
        median = statistics.median(ms[precision])
        out[precision] = {"median_ms_per_iter": round(median * 1e3, 1), "peak_gflops": round(peak / 1e9),
                          "achieved_gflops": round(results[precision][0] / median / 1e9),
                          "mfu": round(results[precision][0] / median / peak, 3)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="experiment", required=True)
    p = sub.add_parser("parity")
    p.add_argument("--reference-steps", type=int, default=200)
    p.add_argument("--seeds", type=int, default=3)
    b = sub.add_parser("budget")
    b.add_argument("--config", default=str(REPO / "configs" / "gpt-shakespeare-char-10min.yaml"))
    b.add_argument("--minutes", type=float, default=10.0)
    b.add_argument("--name", default="shakespeare-10min")
    m = sub.add_parser("mfu")
    m.add_argument("--rounds", type=int, default=2)
    m.add_argument("--steps", type=int, default=15)
    m.add_argument("--root", default=str(REPO.parent / "shared/data/tinyshakespeare/input.txt"))
    args = parser.parse_args()

    result = {"parity": parity, "budget": budget, "mfu": mfu}[args.experiment](args)
    result["machine"], result["torch"] = machine(), torch.__version__
    key = args.name if args.experiment == "budget" else args.experiment
    print(json.dumps({key: result}, indent=2))
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "lm_training.json"
    everything = json.loads(path.read_text()) if path.exists() else {}
    everything[key] = result
    path.write_text(json.dumps(everything, indent=2) + "\n")


if __name__ == "__main__":
    main()
