"""`aigckit eval` on a stylizer run (fast-style, adain): held-out content images stylised, scored with features
the network never trained against (aigckit.evaluation.metrics.style), beside the same scores of the unchanged
content (what "no transfer at all" scores), and the time per image."""

from __future__ import annotations

import dataclasses
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_write_text
from ..data import load_dataset
from ..imaging import save_grid, to_pil
from .metrics.style import style_scores

__all__ = ["evaluate_stylizer"]

SCORES = ("style_distance", "patch_fd", "content_ssim", "edge_correlation")
TIMED_CALLS = 10


def _mean_scores(rows: list[dict[str, Any]]) -> dict[str, float]:
    return {key: float(sum(row[key] for row in rows) / len(rows)) for key in SCORES}


@torch.no_grad()
def evaluate_stylizer(run_dir: Path, pipeline: Any, data: Any, *, n: int = 50) -> dict[str, Any]:
    """Stylise the first n images of the run's validation split (adain: in its preview styles, cycled) and score
    each against its style and its content; writes run_dir/eval/metrics.json and a grid of content above result."""
    model, config = pipeline.model, pipeline.config
    val = load_dataset(dataclasses.replace(data, image_size=config.image_size), "val")
    content = val.batch(torch.arange(min(n, len(val))))["images"]
    if config.name == "fast-style":
        styles = model.style_image.expand(len(content), -1, -1, -1)
        options: dict[str, Any] = {}
    else:
        styles = model.preview_styles[torch.arange(len(content)) % model.preview_styles.shape[0]]
        options = {"style": styles}
    output = pipeline.sample(len(content), content=content, **options)
    rows, baseline = [], []
    for out_image, content_image, style_image in zip(to_pil(output), to_pil(content), to_pil(styles.float())):
        rows.append(style_scores(out_image, content_image, style_image))
        baseline.append(style_scores(content_image, content_image, style_image))

    seconds = []
    for i in range(TIMED_CALLS + 1):  # one image at a time, as a user stylises; the first call warms up
        started = time.perf_counter()
        pipeline.sample(1, content=content[i % len(content):][:1], **{k: v[:1] for k, v in options.items()})
        seconds.append(time.perf_counter() - started)
    out_dir = Path(run_dir) / "eval"
    out_dir.mkdir(parents=True, exist_ok=True)
    shown = min(8, len(content))
    save_grid(torch.cat([content[:shown], output[:shown]]), out_dir / "stylized.png", nrow=shown,
              upscale=max(1, 64 // config.image_size))
    result = {"run": str(run_dir), "checkpoint": str(pipeline.checkpoint), "family": "style", "model": config.name,
              "dataset": data.name, "content_split": "val", "n_images": len(content), "image_size": config.image_size,
              "features_trained_with": model.features_used, "scored_with": rows[0]["scored_with"],
              "styles": "its learned style" if config.name == "fast-style" else
              f"its {model.preview_styles.shape[0]} preview styles, cycled",
              **_mean_scores(rows), "unchanged_content": _mean_scores(baseline),
              "ms_per_image": 1000 * statistics.median(seconds[1:]),
              "sampling_precision": pipeline.precision.describe(), "grid_png": str(out_dir / "stylized.png")}
    atomic_write_text(out_dir / "metrics.json", json.dumps(result, indent=2) + "\n")
    return result
