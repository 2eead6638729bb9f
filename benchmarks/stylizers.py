"""The three style-transfer methods side by side: Gatys' optimisation, a fast-style network and AdaIN, each trained
(the two networks) for the same minutes on this machine, then run on one content/style pair at 256x256.

    python benchmarks/stylizers.py [--minutes 10] [--size 256] [--gatys-steps 300] [--runs runs/style]

Trains configs/fast-style-photos.yaml and configs/adain-photos.yaml for --minutes each (a run already trained
with the same config and minutes is reused), scores each on 100 held-out photo crops (`aigckit eval`), then
stylises scikit-image's astronaut in the style of its immunohistochemistry photo (the fast network's style) with
all three, timing one image at --size (median of 5 after one warm-up; gatys: its whole optimisation) and scoring
each result with style_scores (random filters of a seed none of them trained with). Writes
benchmarks/results/stylizers.{json,md} and the README figure docs/style-transfer.png.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from aigckit.checkpoint import list_checkpoints  # noqa: E402
from aigckit.config import load_config  # noqa: E402
from aigckit.data.photos import bundled_photo  # noqa: E402
from aigckit.evaluation.evaluate import evaluate_run  # noqa: E402
from aigckit.evaluation.metrics.style import style_scores  # noqa: E402
from aigckit.pipelines import load  # noqa: E402
from aigckit.pipelines.style import _model_input, _output_image, stylize_gatys  # noqa: E402
from aigckit.style.features import feature_network  # noqa: E402
from aigckit.training import Trainer  # noqa: E402
from timing import machine, write_results  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = {"fast-style": ROOT / "configs" / "fast-style-photos.yaml", "adain": ROOT / "configs" / "adain-photos.yaml"}
CONTENT, STYLE = "astronaut", "immunohistochemistry"  # astronaut is a held-out photo of the training data
TIMED = 5


def _trained(name: str, minutes: float, runs: Path) -> Path:
    """The run of CONFIGS[name] trained `minutes`, trained now unless a finished one is there."""
    run_dir = runs / name
    marker = run_dir / "benchmark.json"
    config_text = CONFIGS[name].read_text()
    if list_checkpoints(run_dir) and marker.is_file():
        done = json.loads(marker.read_text())
        if done == {"minutes": minutes, "config": config_text}:
            return run_dir
        raise SystemExit(f"{run_dir} was trained with another config or time; move it away to train again")
    if run_dir.exists():
        raise SystemExit(f"{run_dir} holds an unfinished run; remove it to train again")
    print(f"== training {name} for {minutes} min", flush=True)
    config = load_config(CONFIGS[name], [f"train.max_minutes={minutes}"])
    Trainer(config, run_dir, show_progress=False).fit()
    marker.write_text(json.dumps({"minutes": minutes, "config": config_text}))
    return run_dir


def _time_network(run_dir: Path, content, style, size: int) -> tuple[object, float]:
    """The stylised image and the median seconds of one forward pass at `size` (loading not counted)."""
    pipeline = load(run_dir)
    config = pipeline.config
    multiple = pipeline.model.size_multiple()
    x, (width, height) = _model_input(content, size, config.channels, multiple)
    options = {"content": x}
    if config.name == "adain":
        options["style"] = _model_input(style.resize((width, height)), size, config.channels, multiple)[0]
    seconds = []
    for _ in range(TIMED + 1):
        started = time.perf_counter()
        output = pipeline.sample(1, **options)
        seconds.append(time.perf_counter() - started)
    return _output_image(output, width, height), statistics.median(seconds[1:])


def _figure(images: dict[str, object], path: Path) -> None:
    figure, axes = plt.subplots(1, len(images), figsize=(3 * len(images), 3.3))
    for axis, (title, image) in zip(axes, images.items()):
        axis.imshow(image)
        axis.set_title(title, fontsize=9)
        axis.axis("off")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--gatys-steps", type=int, default=300)
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "style")
    parser.add_argument("--figure", type=Path, default=ROOT / "docs" / "style-transfer.png")
    args = parser.parse_args()

    runs = {name: _trained(name, args.minutes, args.runs) for name in CONFIGS}
    held_out = {name: evaluate_run(run_dir, n=100) for name, run_dir in runs.items()}
    steps = {name: int(list_checkpoints(run_dir)[-1].name.removeprefix("step-")) for name, run_dir in runs.items()}

    content, style = bundled_photo(CONTENT), bundled_photo(STYLE)
    features = feature_network(download=False)
    started = time.perf_counter()
    gatys = stylize_gatys(content, style, size=args.size, steps=args.gatys_steps, features=features)
    results = {"gatys": (gatys.image, time.perf_counter() - started)}
    results["fast-style"] = _time_network(runs["fast-style"], content, None, args.size)
    results["adain"] = _time_network(runs["adain"], content, style, args.size)
    scores = {name: style_scores(image, content, style) for name, (image, _) in results.items()}
    scores["unchanged content"] = style_scores(content.resize(gatys.image.size), content, style)

    pair = f"{CONTENT} in the style of {STYLE} at {gatys.image.width}×{gatys.image.height}"
    lines = [f"Style transfer on {machine()}: {pair}; networks trained {args.minutes:g} min each on the bundled "
             f"photos; gatys {args.gatys_steps} L-BFGS evaluations with {features.description}", "",
             "| method | time per image | style distance | patch FD | content SSIM | edge correlation |",
             "|---|---|---|---|---|---|"]
    for name, row in scores.items():
        seconds = results[name][1] if name in results else None
        time_cell = "—" if seconds is None else (f"{seconds:.1f} s" if seconds >= 1 else f"{1000 * seconds:.0f} ms")
        lines.append(f"| {name} | {time_cell} | {row['style_distance']:.3g} | {row['patch_fd']:.3g} | "
                     f"{row['content_ssim']:.3f} | {row['edge_correlation']:.3f} |")
    lines += ["", f"Scored with {scores['gatys']['scored_with']}.", "",
              "Held-out photo crops (100, at the training size; `aigckit eval`):", "",
              "| network | training steps | style distance (unchanged) | content SSIM (unchanged) | ms per image |",
              "|---|---|---|---|---|"]
    for name, metrics in held_out.items():
        unchanged = metrics["unchanged_content"]
        lines.append(f"| {name} ({metrics['features_trained_with']} features) | {steps[name]} | "
                     f"{metrics['style_distance']:.3g} ({unchanged['style_distance']:.3g}) | "
                     f"{metrics['content_ssim']:.3f} ({unchanged['content_ssim']:.3f}) | "
                     f"{metrics['ms_per_image']:.1f} |")
    _figure({"content": content.resize(gatys.image.size), "style": style,
             **{f"{name} ({results[name][1]:.2g} s)": results[name][0] for name in results}}, args.figure)
    write_results("stylizers", {"machine": machine(), "torch": torch.__version__, "minutes": args.minutes,
                                "size": args.size, "pair": pair, "gatys_features": features.description,
                                "gatys_steps": args.gatys_steps,
                                "seconds": {name: seconds for name, (_, seconds) in results.items()},
                                "training_steps": steps, "scores": scores, "held_out": held_out,
                                "figure": str(args.figure)}, lines)


if __name__ == "__main__":
    main()
