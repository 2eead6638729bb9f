"""Cross-family quality: a DCGAN, a VAE and a diffusion model trained for the same CPU time, measured alike.

    python benchmarks/quality.py [--minutes 20] [--n 10000] [--datasets mnist,fashion-mnist]
                                 [--data-root ../shared/data] [--sweep-n 1000]

For each dataset (standard IDX files under --data-root/<name>), each family trains from its preset in
configs/ for --minutes of wall time on this machine (train.max_minutes), then `evaluate_run` measures
--n samples against the test split with the dataset's evaluator network. On the diffusion run of the first
dataset, FID is also measured against sampling steps (10/20/50/100/1000) for DDPM, DDIM and DPM-Solver++.
Writes benchmarks/results/quality.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from aigckit.config import load_config
from aigckit.evaluation.evaluate import evaluate_run
from aigckit.training import train

ROOT = Path(__file__).parents[1]
RESULTS = ROOT / "benchmarks" / "results"
FAMILIES = {  # family -> (preset, overrides that put it on a 32x32 grey dataset)
    "gan": ("dcgan-digits", ["model.base_channels=64", "model.z_dim=100", "train.ema_decay=0.999"]),
    "vae": ("vae-digits", ["model.latent_dim=16", "model.base_channels=64"]),
    "diffusion": ("diffusion-mnist", []),
}
SWEEP_STEPS = (10, 20, 50, 100, 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--datasets", default="mnist,fashion-mnist")
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--sweep-n", type=int, default=1000)
    parser.add_argument("--runs", default=str(ROOT / "runs" / "quality"))
    args = parser.parse_args()

    started = time.time()
    rows, sweep = [], None
    for d_index, dataset in enumerate(args.datasets.split(",")):
        for family, (preset, extra) in FAMILIES.items():
            run_dir = Path(args.runs) / f"{family}-{dataset}"
            shutil.rmtree(run_dir, ignore_errors=True)
            overrides = [f"data.name={dataset}", f"data.root={args.data_root}/{dataset}", "data.image_size=32",
                         "train.max_steps=1000000", f"train.max_minutes={args.minutes}", "train.checkpoint_every=2000",
                         "train.sample_every=2000", *extra]
            print(f"== {family} on {dataset}: training for {args.minutes} min", flush=True)
            train(load_config(ROOT / "configs" / f"{preset}.yaml", overrides), run_dir, show_progress=False)
            steps_done = int(json.loads(sorted((run_dir / "checkpoints").glob("step-*"))[-1]
                                        .joinpath("training_state.json").read_text())["step"])
            want_sweep = family == "diffusion" and d_index == 0
            result = evaluate_run(run_dir, n=args.n, sweep=())
            if want_sweep:
                sweep = sweep_table(run_dir, args.sweep_n)
            rows.append({"dataset": dataset, "family": family, "model": result["model"], "train_steps": steps_done,
                         "train_minutes": args.minutes, **{k: result[k] for k in (
                             "fid", "kid_mean", "kid_std", "precision", "recall", "density", "coverage",
                             "classifier_score", "extractor", "n_samples")},
                         "conditional_accuracy": (result["conditional_accuracy"] or {}).get("overall"),
                         "near_copies": result["memorisation"]["near_copy_fraction"],
                         "bits_per_dim": (result["likelihood"] or {}).get("bits_per_dim"),
                         "sampler": result["sampler"], "eval_seconds": result["seconds"]})
            print(json.dumps(rows[-1]), flush=True)

    results = {"rows": rows, "fid_vs_steps": sweep, "minutes_per_model": args.minutes,
               "wall_minutes_total": round((time.time() - started) / 60, 1)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "quality.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "quality.md").write_text(markdown(results) + "\n")
    print(markdown(results))


def sweep_table(run_dir: Path, n: int) -> list[dict]:
    """FID against sampling steps for the three samplers on one checkpoint."""
    from aigckit.evaluation.evaluate import evaluate_run as evaluate

    result = evaluate(run_dir, n=n, sweep=SWEEP_STEPS, with_likelihood=False)
    return result["sweep"]


def markdown(results: dict) -> str:
    lines = [f"Each model trained {results['minutes_per_model']} min on 2 CPU cores; evaluator-network features; "
             f"whole benchmark {results['wall_minutes_total']} min.", "",
             "| dataset | model | steps | FID | KID (×1e3) | precision | recall | density | coverage | "
             "class. score | cond. acc. | bits/dim |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results["rows"]:
        bpd = f"{r['bits_per_dim']:.3f}" if r["bits_per_dim"] is not None else "—"
        acc = f"{r['conditional_accuracy']:.3f}" if r["conditional_accuracy"] is not None else "—"
        lines.append(f"| {r['dataset']} | {r['model']} | {r['train_steps']} | {r['fid']:.3f} | "
                     f"{r['kid_mean'] * 1e3:.2f} ± {r['kid_std'] * 1e3:.2f} | {r['precision']:.3f} | {r['recall']:.3f} | "
                     f"{r['density']:.3f} | {r['coverage']:.3f} | {r['classifier_score']:.2f} | {acc} | {bpd} |")
    if results["fid_vs_steps"]:
        steps = sorted({r["steps"] for r in results["fid_vs_steps"]})
        lines += ["", "FID against sampling steps (diffusion, first dataset, "
                  f"{results['fid_vs_steps'][0]['n_samples']} samples):", "",
                  "| sampler | " + " | ".join(str(s) for s in steps) + " |", "|---|" + "---|" * len(steps)]
        for sampler in ("ddpm", "ddim", "dpm-solver++"):
            fids = {r["steps"]: r["fid"] for r in results["fid_vs_steps"] if r["sampler"] == sampler}
            lines.append(f"| {sampler} | " + " | ".join(f"{fids[s]:.3f}" for s in steps) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
