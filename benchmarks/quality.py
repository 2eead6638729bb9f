"""Image quality per CPU-minute: each family trained for the same wall time, measured alike, in one command.

    python benchmarks/quality.py [--minutes 10] [--option-minutes 2] [--n 5000] [--option-n 2000]
                                 [--sweep-n 1000] [--sweep-steps 10,20,50,100,1000] [--sweep-long ddpm]
                                 [--datasets mnist,fashion-mnist] [--data-root ../shared/data] [--runs runs/quality]
                                 [--parts main,options,sweep] [--families dcgan,vae,diffusion] [--image-size 32]

1. For each dataset (standard IDX files under --data-root/<name>), the DCGAN, the VAE and the diffusion model train
   from their presets (configs/<family>-<dataset>.yaml) for --minutes of wall time (train.max_minutes), then
   `evaluate_run` measures --n samples against the test split on the dataset evaluator's features, every model at
   --image-size (a 28x28 model's samples resized exactly as the loader resizes the real images), so that one
   evaluator measures them all.
2. The diffusion options: the MNIST diffusion preset with one training option changed at a time (OPTIONS),
   each trained --option-minutes and measured on --option-n samples, beside the preset itself.
3. The sampler sweep: on the --minutes MNIST diffusion model, FID, conditional accuracy and seconds per image for
   DDPM, DDIM and DPM-Solver++ at each of --sweep-steps, --sweep-n samples each, guidance as the preset says;
   the largest step count only for the samplers in --sweep-long (at 1,000 steps a cell costs 50 times one at 20).

Every result is kept beside its run (<runs>/<key>/benchmark.json, sweep/<sampler>-<steps>.json) with the settings
that made it, and reused when a rerun asks for the same, so an interrupted benchmark resumes where it stopped: a
model cut off mid-training resumes from its last checkpoint (the time budget counts its earlier training).
The defaults fit the issue's 3 hours on 2 CPU cores (about 2 h 25 min with the VAE rows, by the parts measured
here): 60 minutes of main training, 12 of options, and a sweep whose one 1,000-step cell takes half an hour at
1,000 guided samples (5,000 would take 2 h 40 min alone).
Writes benchmarks/results/quality.{json,md} (quality_cuda.* when run on a GPU).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import time
from pathlib import Path

import torch

from aigckit.atomic import atomic_write_text
from aigckit.config import RunConfig, load_config, to_dict
from aigckit.evaluation.evaluate import evaluate_run, evaluate_sampler
from aigckit.machine import cpu_name
from aigckit.training import train

ROOT = Path(__file__).parents[1]
RESULTS = ROOT / "benchmarks" / "results"
FAMILIES = ("dcgan", "vae", "diffusion")  # presets configs/<family>-<dataset>.yaml
# the diffusion preset with one option changed: what each of its choices is worth (filled in by measurement)
OPTIONS = {
    "preset (v, Min-SNR-5, EMA, 2x2 patches)": [],
    "eps prediction": ["model.prediction=eps"],
    "no patches (16-32-64 channels at 32, 16, 8 px)": ["model.patch_size=1", "model.base_channels=16",
                                                       "model.channel_mults=[1,2,4]"],
    "no Min-SNR weighting": ["model.min_snr_gamma=null"],
    "EDM preconditioning + log-normal noise": ["model.prediction=edm", "model.noise_sampling=lognormal",
                                               "model.min_snr_gamma=null"],
    "no EMA (live weights)": ["train.use_ema=false"],
}
SAMPLERS = ("ddpm", "ddim", "dpm-solver++")
SAMPLING_FIELDS = {"sampler": "sampler", "steps": "sampling_steps", "guidance": "guidance"}  # evaluate_run's names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--option-minutes", type=float, default=2.0)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--option-n", type=int, default=2000)
    parser.add_argument("--sweep-n", type=int, default=1000)
    parser.add_argument("--sweep-steps", default="10,20,50,100,1000")
    parser.add_argument("--sweep-long", default="ddpm",
                        help="the samplers that also run the largest of --sweep-steps")
    parser.add_argument("--datasets", default="mnist,fashion-mnist")
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--runs", default=str(ROOT / "runs" / "quality"))
    parser.add_argument("--parts", default="main,options,sweep", help="which of the three to run (or reuse)")
    parser.add_argument("--families", default=",".join(FAMILIES), help="which families the main table trains")
    parser.add_argument("--image-size", type=int, default=32,
                        help="every model measured at this size, on one evaluator (samples resized as the loader does)")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    runs, started = Path(args.runs), time.time()
    device = "cuda" if torch.cuda.is_available() else "cpu"

    rows = [trained_result(runs / f"{family}-{dataset}", f"{family}-{dataset}", [], args.minutes, args.n,
                           args.data_root, args.image_size)
            for dataset in args.datasets.split(",") for family in args.families.split(",")] if "main" in parts else []
    options = [{"option": name, **trained_result(runs / f"option-{slug(name)}", "diffusion-mnist", overrides,
                                                 args.option_minutes, args.option_n, args.data_root, args.image_size)}
               for name, overrides in OPTIONS.items()] if "options" in parts else []
    steps_list = sorted(int(steps) for steps in args.sweep_steps.split(","))
    guidance = load_config(ROOT / "configs" / "diffusion-mnist.yaml", []).model.guidance
    sweep = [sweep_cell(runs / "diffusion-mnist", sampler, steps, args.sweep_n, guidance)
             for sampler in SAMPLERS for steps in steps_list
             if steps < steps_list[-1] or sampler in args.sweep_long.split(",")] if "sweep" in parts else []

    results = {"device": torch.cuda.get_device_name() if device == "cuda" else cpu_name(),
               "torch": torch.__version__, "minutes_per_model": args.minutes, "option_minutes": args.option_minutes,
               "rows": rows, "options": options, "fid_vs_steps": sweep,
               "wall_minutes_this_invocation": round((time.time() - started) / 60, 1)}
    name = "quality" if device == "cpu" else "quality_cuda"
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS / f"{name}.json", json.dumps(results, indent=2) + "\n")
    atomic_write_text(RESULTS / f"{name}.md", markdown(results) + "\n")
    print(markdown(results))


def slug(text: str) -> str:
    """A folder name for an option."""
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def training_and_sampling(config: RunConfig) -> tuple[str, dict]:
    """The sha256 of everything in a config that training reads, and the sampling settings it holds (sampler,
    steps, guidance: only sampling reads them, so changing them in a preset measures the trained model again)."""
    resolved = to_dict(config)
    sampling = {name: resolved["model"].pop(field) for name, field in SAMPLING_FIELDS.items()
                if field in resolved["model"]}
    return hashlib.sha256(json.dumps(resolved, sort_keys=True).encode()).hexdigest(), sampling


def cached(path: Path, settings: dict, make) -> dict:
    """The result stored at `path` if it was made with `settings`, else make() it and store it."""
    if path.is_file():
        stored = json.loads(path.read_text())
        if stored["settings"] == settings:
            return stored["result"]
    result = make()
    atomic_write_text(path, json.dumps({"settings": settings, "result": result}, indent=2) + "\n")
    return result


def trained_result(run_dir: Path, preset: str, overrides: list[str], minutes: float, n: int, data_root: str,
                   image_size: int) -> dict:
    """Train `preset` (+ overrides) for `minutes` into run_dir (resuming a cut-off run) and evaluate n samples
    at image_size."""
    config_path = ROOT / "configs" / f"{preset}.yaml"
    dataset = load_config(config_path, []).data.name
    overrides = [f"data.root={data_root}/{dataset}", "train.max_steps=1000000", f"train.max_minutes={minutes}",
                 "train.checkpoint_every=250", "train.sample_every=1000000", *overrides]
    config = load_config(config_path, overrides)
    training, sampling = training_and_sampling(config)
    training_settings = {"preset": preset, "training_config_sha256": training, "overrides": overrides}
    settings = {**training_settings, "sampling": sampling, "n": n, "image_size": image_size}

    def make() -> dict:
        finished = run_dir / "benchmark.json"
        checkpoints = sorted((run_dir / "checkpoints").glob("step-*"))
        same = checkpoints and json.loads((run_dir / "settings.json").read_text()) == training_settings
        done = same and json.loads(checkpoints[-1].joinpath("training_state.json").read_text())[
            "elapsed_seconds"] >= minutes * 60
        if not same:
            shutil.rmtree(run_dir, ignore_errors=True)
            run_dir.mkdir(parents=True)
            atomic_write_text(run_dir / "settings.json", json.dumps(training_settings) + "\n")
        finished.unlink(missing_ok=True)
        if not done:  # a finished run with other sampling settings is only measured again
            print(f"== {preset} {' '.join(overrides[3:])}: training for {minutes} min"
                  + (" (resumed)" if same else ""), flush=True)
            train(config, run_dir, resume=bool(same), show_progress=False)
        state = json.loads(sorted((run_dir / "checkpoints").glob("step-*"))[-1]
                           .joinpath("training_state.json").read_text())
        result = evaluate_run(run_dir, n=n, image_size=image_size, **sampling)
        row = {"dataset": dataset, "preset": preset, "model": result["model"], "train_steps": int(state["step"]),
               "train_minutes": minutes, **{k: result[k] for k in (
                   "fid", "kid_mean", "kid_std", "precision", "recall", "density", "coverage",
                   "classifier_score", "extractor", "n_samples", "sampler", "sampling_precision", "image_size",
                   "model_image_size")},
               "conditional_accuracy": (result["conditional_accuracy"] or {}).get("overall"),
               "near_copies": result["memorisation"]["near_copy_fraction"],
               "bits_per_dim": (result["likelihood"] or {}).get("bits_per_dim"), "eval_seconds": result["seconds"]}
        print(json.dumps(row), flush=True)
        return row

    return cached(run_dir / "benchmark.json", settings, make)


def sweep_cell(run_dir: Path, sampler: str, steps: int, n: int, guidance: float | None) -> dict:
    """One sampler at one step count on the trained run, cached beside it."""
    checkpoint = sorted((run_dir / "checkpoints").glob("step-*"))[-1].name
    settings = {"checkpoint": checkpoint, "n": n, "guidance": guidance}

    def make() -> dict:
        print(f"== sweep: {sampler} at {steps} steps, {n} samples", flush=True)
        row = evaluate_sampler(run_dir, sampler=sampler, steps=steps, n=n, guidance=guidance)
        print(json.dumps(row), flush=True)
        return row

    return cached(run_dir / "sweep" / f"{sampler}-{steps}.json", settings, make)


def markdown(results: dict) -> str:
    """The three tables of the README."""
    lines = [f"Each model trained {results['minutes_per_model']} min on {results['device']}; dataset-evaluator "
             "features; FID/KID on the test split.", "",
             "| dataset | model | steps | FID | KID (×1e3) | precision | recall | density | coverage | "
             "class. score | cond. acc. | bits/dim |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results["rows"]:
        lines.append(f"| {r['dataset']} | {r['model']} | {r['train_steps']} | {r['fid']:.3f} | "
                     f"{r['kid_mean'] * 1e3:.2f} ± {r['kid_std'] * 1e3:.2f} | {r['precision']:.3f} | "
                     f"{r['recall']:.3f} | {r['density']:.3f} | {r['coverage']:.3f} | {r['classifier_score']:.2f} | "
                     f"{number(r['conditional_accuracy'])} | {number(r['bits_per_dim'])} |")
    if results["options"]:
        lines += ["", f"Diffusion options (MNIST preset with one change, {results['option_minutes']} min each, "
                  f"{results['options'][0]['n_samples']} samples):", "",
                  "| option | steps | FID | cond. acc. |", "|---|---|---|---|"]
        for r in results["options"]:
            lines.append(f"| {r['option']} | {r['train_steps']} | {r['fid']:.3f} | "
                         f"{number(r['conditional_accuracy'])} |")
    sweep = results["fid_vs_steps"]
    if sweep:
        steps = sorted({r["steps"] for r in sweep})
        lines += ["", f"Samplers on the {results['minutes_per_model']}-min MNIST diffusion model "
                  f"({sweep[0]['n_samples']} samples per cell, guidance {sweep[0]['guidance']}): "
                  "FID / conditional accuracy / ms per image", "",
                  "| sampler | " + " | ".join(str(s) for s in steps) + " |", "|---|" + "---|" * len(steps)]
        for sampler in SAMPLERS:
            cells = {r["steps"]: r for r in sweep if r["sampler"] == sampler}
            lines.append(f"| {sampler} | " + " | ".join(
                f"{cells[s]['fid']:.3f} / {number(cells[s]['conditional_accuracy'])} / "
                f"{cells[s]['seconds_per_image'] * 1e3:.1f}" if s in cells else "not run" for s in steps) + " |")
    return "\n".join(lines)


def number(value: float | None) -> str:
    """Three decimals, or a dash for a figure the model has none of."""
    return "—" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    main()
