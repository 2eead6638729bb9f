"""Text-to-image on captioned canvases (issue 16): the preset trained for a fixed wall time, then scored on what the
captions ask for.

    python benchmarks/multimodal.py [--minutes 20] [--n 1000] [--guidance 1,3,5] [--data-root ../shared/data/mnist]
                                    [--runs runs/multimodal]

1. configs/clip-captioned-mnist.yaml trains (500 steps, timed) into <runs>/clip-captioned-mnist: the caption
   encoder the text-to-image preset reads, frozen, and the CLIP-score judge; then
   configs/diffusion-captioned-mnist.yaml trains --minutes of wall time (train.max_minutes) into
   <runs>/diffusion-captioned-mnist (a run trained with the same settings before is not trained again).
2. `evaluate_run` draws --n test captions, half with only seen (class, position) pairs and half with a pair never
   seen in training, at each --guidance: class, position, item (both) and whole-caption accuracy of what the
   caption names (evaluation.text_to_image; the source data's evaluators at the items' sizes), the same for the
   real test canvases (the ceiling), FID against the test canvases (the canvases' own evaluator), and the
   CLIP-score of the images with their captions beside the real canvases' own (by the same clip model whose
   text encoder the generator reads: not an independent judge, and recorded as such).
3. Sampling time per image (a batch of 100, the preset's sampler and steps, guidance on).

Writes benchmarks/results/multimodal.{json,md} and docs/text-to-image.png (the eval's prompt grid at the best
guidance). Time nothing else on the machine while it runs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import time
from pathlib import Path

from aigckit.atomic import atomic_write_text
from aigckit.config import load_config, to_dict
from aigckit.data import load_dataset
from aigckit.data.captions import canvas_layout
from aigckit.evaluation.clip_score import load_clip, swap_preference
from aigckit.evaluation.evaluate import evaluate_run
from aigckit.machine import cpu_name
from aigckit.pipelines import load
from aigckit.training import train
from timing import trained_for, write_results

ROOT = Path(__file__).parents[1]
PRESET = "diffusion-captioned-mnist"
CLIP_PRESET = "clip-captioned-mnist"


def trained_clip(data_root: str, runs: Path) -> tuple[Path, float, dict, bool]:
    """The clip preset trained (reused when trained from the same config before), its training minutes, its
    retrieval figures on validation pairs at the end, and whether it was trained now."""
    config = load_config(ROOT / "configs" / f"{CLIP_PRESET}.yaml", [f"data.root={data_root}"])
    run_dir = runs / CLIP_PRESET
    record = run_dir / "benchmark-minutes.json"
    digest = hashlib.sha256(json.dumps(to_dict(config), sort_keys=True).encode()).hexdigest()
    trained_now = not record.is_file() or json.loads(record.read_text())["config_sha256"] != digest
    if trained_now:
        shutil.rmtree(run_dir, ignore_errors=True)
        print(f"== {CLIP_PRESET}: training {config.train.max_steps} steps", flush=True)
        started = time.perf_counter()
        train(config, run_dir, show_progress=False)
        atomic_write_text(record, json.dumps({"config_sha256": digest,
                                              "minutes": (time.perf_counter() - started) / 60}) + "\n")
    probe = json.loads((run_dir / "samples" / f"step-{config.train.max_steps:06d}.json").read_text())
    return run_dir, json.loads(record.read_text())["minutes"], probe, trained_now


def trained(minutes: float, data_root: str, runs: Path, clip_run: Path,
            clip_trained_now: bool) -> tuple[Path, int, str]:
    """The preset trained for `minutes` (reused when trained from the same config before, on the same clip run),
    its steps and the sha256 of its config."""
    overrides = [f"data.root={data_root}", "train.max_steps=1000000", f"train.max_minutes={minutes}",
                 "train.sample_every=1000000", f"model.text_encoder_run={clip_run}"]
    config = load_config(ROOT / "configs" / f"{PRESET}.yaml", overrides)
    run_dir = runs / PRESET
    if clip_trained_now or trained_for(run_dir, config) < minutes * 60 - 1:  # a new clip run: a new encoder
        shutil.rmtree(run_dir, ignore_errors=True)
        print(f"== {PRESET}: training for {minutes} min", flush=True)
        train(config, run_dir, show_progress=False)
    state = json.loads(sorted((run_dir / "checkpoints").glob("step-*"))[-1].joinpath("training_state.json").read_text())
    digest = hashlib.sha256(json.dumps(to_dict(config), sort_keys=True).encode()).hexdigest()
    return run_dir, int(state["step"]), digest


def swap_preference_on_test(clip_run: Path, data_root: str, canvases: int = 1000) -> dict:
    """evaluation.clip_score.swap_preference of the clip run on the first `canvases` test canvases."""
    data = load_config(ROOT / "configs" / f"{CLIP_PRESET}.yaml", [f"data.root={data_root}"]).data
    test = load_dataset(data, "test")
    captions = canvas_layout(data, "test").captions[:canvases]
    return swap_preference(load_clip(clip_run), test.images[:canvases], captions)


def sampling_speed(run_dir: Path, guidance: float, images: int = 100) -> float:
    """Seconds per image of one batch of `images` drawn for one caption."""
    pipeline = load(run_dir)
    started = time.perf_counter()
    pipeline.sample(images, seed=0, prompt="a small 7 at the top left and a large 2 on the right", guidance=guidance)
    return (time.perf_counter() - started) / images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--guidance", default="1,3,5")
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "multimodal")
    args = parser.parse_args()
    clip_run, clip_minutes, clip_probe, clip_trained_now = trained_clip(args.data_root, args.runs)
    run_dir, steps, config_sha256 = trained(args.minutes, args.data_root, args.runs, clip_run, clip_trained_now)
    rows = []
    for guidance in (float(g) for g in args.guidance.split(",")):
        print(f"== guidance {guidance}: scoring {args.n} captions", flush=True)
        metrics = evaluate_run(run_dir, n=args.n, guidance=guidance, with_likelihood=False, clip_run=clip_run)
        scores = metrics["text_to_image"]
        rows.append({"guidance": guidance, "fid": metrics["fid"], "generated": scores["generated"],
                     "real_test": scores["real_test"], "evaluators": scores["evaluators"],
                     "clip_score": metrics["clip_score"],
                     "extractor": metrics["extractor"], "sampler": metrics["sampler"],
                     "eval_seconds": metrics["seconds"]})
        shutil.copy(scores["prompts_png"], run_dir / "eval" / f"prompts-guidance-{guidance:g}.png")
    best = max(rows, key=lambda row: row["generated"]["seen"]["item_accuracy"])
    shutil.copy(run_dir / "eval" / f"prompts-guidance-{best['guidance']:g}.png", ROOT / "docs" / "text-to-image.png")
    results = {"machine": cpu_name(), "preset": PRESET, "config_sha256": config_sha256, "train_minutes": args.minutes,
               "train_steps": steps, "n": args.n, "rows": rows,
               "clip": {"preset": CLIP_PRESET, "train_minutes": clip_minutes, "validation_retrieval": clip_probe,
                        "swap_preference": swap_preference_on_test(clip_run, args.data_root)},
               "seconds_per_image": sampling_speed(run_dir, best["guidance"]), "best_guidance": best["guidance"]}
    table = [f"{PRESET}: {steps:,} steps in {args.minutes:g} min ({cpu_name()}), reading the frozen caption "
             f"encoder of {CLIP_PRESET} ({clip_minutes:.1f} min before it; validation top-1 "
             f"{clip_probe['image_to_text_top1']:.2f} image->caption, {clip_probe['text_to_image_top1']:.2f} "
             f"caption->image among {clip_probe['distinct_captions']} captions; its own caption above the one with "
             f"the two places swapped for {results['clip']['swap_preference']['own_over_swapped']:.3f} of "
             f"{results['clip']['swap_preference']['pairs']} two-item test canvases); {args.n} test captions "
             f"(half seen, half held-out compositions); {results['seconds_per_image']:.3f} s per image "
             f"(guidance {best['guidance']:g}). CLIP-score by that same clip model (not an independent judge).", "",
             "| images | guidance | captions | class | position | item (both) | whole caption | CLIP-score | FID |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        for name, score in row["generated"].items():
            table.append(f"| generated | {row['guidance']:g} | {name.replace('_', '-')} | "
                         f"{score['class_accuracy']:.3f} | {score['position_accuracy']:.3f} | "
                         f"{score['item_accuracy']:.3f} | {score['caption_accuracy']:.3f} | "
                         f"{row['clip_score'][name]['generated']:.1f} | {row['fid']:.2f} |")
    for name, score in rows[0]["real_test"].items():
        table.append(f"| real test canvases | | {name.replace('_', '-')} | {score['class_accuracy']:.3f} | "
                     f"{score['position_accuracy']:.3f} | {score['item_accuracy']:.3f} | "
                     f"{score['caption_accuracy']:.3f} | {rows[0]['clip_score'][name]['real_test']:.1f} "
                     f"(another's caption: {rows[0]['clip_score'][name]['real_test_other_caption']:.1f}) | |")
    write_results("multimodal", results, table)
    atomic_write_text(run_dir / "benchmark.json", json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
