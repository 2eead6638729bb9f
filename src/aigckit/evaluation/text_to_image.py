"""Text-to-image runs on captioned canvases, scored on what their captions ask for.

Each test caption ("a small 7 at the top left and a large 2 on the right") is drawn by the model; each item it
names is then looked for where the caption puts it:

- digit (or class) accuracy: the item's box (its cell, its size, plus the canvas' jitter) is cut out at the
  item's own size, re-centred on its ink's centre of mass (as MNIST centres its digits), and classified by the
  source dataset's evaluator at that size (aigckit's per-dataset evaluator of MNIST or Fashion-MNIST resized to
  the item's side, so the crop is read without any resampling). On a two-item canvas the other item's half (the
  pixels nearer the other item's centre) is blanked first: two large items' boxes overlap, and with the other
  digit's strokes in the cut the real 32 px canvases' large items in pairs read 0.933 right, alone 0.975 (0.982
  with the blanking; 4,000 test canvases);
- position accuracy: the ink on the item's side of the canvas (the whole canvas for a one-item caption; for two
  items, the pixels nearer its cell's centre than the other's) is at least a quarter of a real item's typical
  ink, and its centre is nearer to where an item of that size sits in the stated cell than in any other cell
  (an item in a corner cell sits moved inwards, so cell boundaries would misjudge it).

The real test canvases scored the same way are the ceiling. Captions with a held-out (class, position) pair,
never seen in training, are scored apart from the others: generalisation to unseen compositions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..config import DataConfig
from ..data import load_dataset
from ..data.captions import SIZE_SCALES, CanvasLayout, canvas_layout, cell_centres, item_box
from ..errors import AigcError
from .extractors.evaluator import Evaluator, load_or_train_evaluator
from .plots import plot_prompt_grid

__all__ = ["CAPTIONED_DATASETS", "caption_items_scores", "score_canvases", "item_evaluators",
           "evaluation_captions", "prompt_grid", "evaluate_text_to_image"]

CAPTIONED_DATASETS = {"captioned-mnist": "mnist", "captioned-fashion-mnist": "fashion-mnist"}
INK = 0.0  # a pixel is ink above mid-grey (images in [-1, 1])
MIN_INK_SHARE = 0.25  # of a real item's median ink, for the item to count as drawn


def _glyph(image: Tensor, top: int, left: int, side: int, margin: int) -> Tensor:
    """(1, side, side): the box (top, left, side) searched `margin` pixels around for its ink, re-centred on the
    ink's centre of mass, kept inside the canvas."""
    canvas = image.shape[-1]
    y0, x0 = max(top - margin, 0), max(left - margin, 0)
    region = image[0, y0:min(top + side + margin, canvas), x0:min(left + side + margin, canvas)]
    ink = (region + 1).clamp(min=0)
    if float(ink.sum()) > 0:
        ys, xs = torch.arange(region.shape[0], dtype=torch.float32), torch.arange(region.shape[1], dtype=torch.float32)
        cy = float((ink.sum(1) * ys).sum() / ink.sum()) + y0
        cx = float((ink.sum(0) * xs).sum() / ink.sum()) + x0
        top, left = round(cy - side / 2 + 0.5), round(cx - side / 2 + 0.5)
    top, left = min(max(top, 0), canvas - side), min(max(left, 0), canvas - side)  # inside the canvas
    return image[:, top:top + side, left:left + side]


def _squared_distance(pixels: np.ndarray, point: np.ndarray) -> np.ndarray:
    """(S, S) squared distance of each pixel centre (S, S, 2) to a point (2,)."""
    return ((pixels - point) ** 2).sum(-1)


def caption_items_scores(images: Tensor, items: np.ndarray, evaluators: Sequence[Evaluator],
                         typical_ink: tuple[float, float]) -> dict[str, np.ndarray]:
    """Per item of each image's caption, (N, 2) bool: "class_right" and "position_right" (False where a canvas
    has no second item; "present" says which). images (N, 1, S, S) in [-1, 1]; items (N, 2, 3) as CanvasLayout's;
    evaluators: of the source data at each item size's side; typical_ink: a real small and large item's median
    ink (pixels above mid-grey)."""
    n, canvas = len(images), images.shape[-1]
    present = items[:, :, 0] >= 0
    centres = cell_centres(canvas)
    every = np.arange(len(centres))
    placed = [item_box(every, size, canvas)[0] + item_box(0, size, canvas)[1] / 2  # (9, 2) item centres per size
              for size in range(len(SIZE_SCALES))]
    margin = canvas // 16  # the canvases' jitter
    glyphs, where = [], []
    position_right = np.zeros((n, 2), dtype=bool)
    ys, xs = np.meshgrid(np.arange(canvas) + 0.5, np.arange(canvas) + 0.5, indexing="ij")
    pixels = np.stack([ys, xs], -1)  # (S, S, 2) pixel centres
    for i in range(n):
        ink_map = (images[i, 0] > INK).numpy()
        for k in np.flatnonzero(present[i]):
            size, position = int(items[i, k, 1]), int(items[i, k, 2])
            (top, left), side = item_box(position, size, canvas)
            image, territory = images[i], ink_map
            if present[i].all():  # two items: the pixels nearer this item's cell than the other's
                other, other_size = int(items[i, 1 - k, 2]), int(items[i, 1 - k, 1])
                territory = ink_map & (_squared_distance(pixels, centres[position])
                                       < _squared_distance(pixels, centres[other]))
                # the other item's half blanked before the cut: the boxes of two large items overlap
                nearer = (_squared_distance(pixels, placed[size][position])
                          <= _squared_distance(pixels, placed[other_size][other]))
                image = torch.where(torch.from_numpy(nearer), image, torch.full_like(image, -1.0))
            glyphs.append(_glyph(image, int(top), int(left), side, margin))
            where.append((i, k))
            mass = territory.sum()
            if mass >= MIN_INK_SHARE * typical_ink[size]:
                centre = np.array([(ys * territory).sum(), (xs * territory).sum()]) / mass
                nearest = np.argmin(((placed[size] - centre) ** 2).sum(1))
                position_right[i, k] = nearest == position
    class_right = np.zeros((n, 2), dtype=bool)
    for size, evaluator in enumerate(evaluators):
        mine = [j for j, (i, k) in enumerate(where) if items[i, k, 1] == size]
        if not mine:
            continue
        _, logits = evaluator.features_and_logits(torch.stack([glyphs[j] for j in mine]))
        for j, guess in zip(mine, logits.argmax(1).tolist()):
            i, k = where[j]
            class_right[i, k] = guess == items[i, k, 0]
    return {"present": present, "class_right": class_right, "position_right": position_right}


def _typical_ink(images: Tensor, layout: CanvasLayout) -> tuple[float, float]:
    """The median ink of real one-item canvases with a small and with a large item."""
    ink = (images > INK).flatten(1).sum(1).numpy()
    single = layout.items[:, 1, 0] < 0
    return tuple(float(np.median(ink[single & (layout.items[:, 0, 1] == s)])) for s in range(len(SIZE_SCALES)))


def _summary(scores: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, Any]:
    present = scores["present"][rows]
    both = scores["class_right"][rows] & scores["position_right"][rows]
    return {"captions": int(len(rows)), "items": int(present.sum()),
            "class_accuracy": float(scores["class_right"][rows][present].mean()),
            "position_accuracy": float(scores["position_right"][rows][present].mean()),
            "item_accuracy": float(both[present].mean()),
            "caption_accuracy": float((both | ~present).all(1).mean())}


def score_canvases(images: Tensor, layout: CanvasLayout, rows: dict[str, np.ndarray],
                   evaluators: Sequence[Evaluator], typical_ink: tuple[float, float]) -> dict[str, dict[str, Any]]:
    """Class, position, item (both right) and whole-caption accuracy of images drawn for layout's captions, for
    each named set of rows."""
    scores = caption_items_scores(images, layout.items, evaluators, typical_ink)
    return {name: _summary(scores, index) for name, index in rows.items() if len(index)}


def item_evaluators(data: DataConfig, cache_dir: Path, *, steps: int = 2000) -> list[Evaluator]:
    """The source dataset's evaluator at each item size's side (small, large) of data's canvases: trained once,
    then cached."""
    source = DataConfig(name=CAPTIONED_DATASETS[data.name], root=data.root, download=data.download,
                        val_fraction=data.val_fraction)
    return [load_or_train_evaluator(dataclasses.replace(source, image_size=item_box(0, size, data.image_size)[1]),
                                    cache_dir, steps=steps) for size in range(len(SIZE_SCALES))]


def evaluation_captions(data: DataConfig, n: int, seed: int) -> tuple[list[str], dict[str, np.ndarray]]:
    """The test split's captions, and which of them to draw (seeded): for canvases, up to n / 2 with only seen
    and n / 2 with a held-out (class, position) pair; for other captioned data, n of them."""
    if data.name in CAPTIONED_DATASETS:
        layout = canvas_layout(data, "test")
        captions, held = layout.captions, layout.held_out
    else:
        captions = load_dataset(data, "test").caption_texts
        if captions is None:
            raise AigcError(f"{data.name} has no captions, so a text-conditional model cannot be evaluated on it; "
                            f"evaluate on the captioned data it was trained on")
        held = np.zeros(len(captions), dtype=bool)
    order = np.random.default_rng(seed).permutation(len(captions))
    if not held.any():
        return captions, {"all": np.sort(order[:n])}
    return captions, {"seen": np.sort(order[~held[order]][:n // 2]),
                      "held_out": np.sort(order[held[order]][:n - n // 2])}


def prompt_grid(pipeline: Any, captions: dict[str, list[str]], out: Path, *, per_prompt: int = 6,
                seed: int = 0, **options: Any) -> Path:
    """A figure of `per_prompt` images for each caption, a row each, the captions grouped by name ("seen",
    "held-out"); `options` go to the sampler."""
    rows = []
    for name, texts in captions.items():
        for i, text in enumerate(texts):
            images = pipeline.sample(per_prompt, seed=seed + i, prompt=text, **options)
            rows.append((f"{text}\n({name.replace('_', '-')})", images))
    return plot_prompt_grid(rows, out)


def evaluate_text_to_image(images: Tensor, chosen: np.ndarray, data: DataConfig, cache_dir: Path,
                           captions_sets: dict[str, np.ndarray]) -> dict[str, Any]:
    """The "text_to_image" section of a text-to-image run's metrics: generated images (drawn for the test
    captions at `chosen`, in that order) and the real test canvases scored per set of captions (seen, held-out)."""
    if data.name not in CAPTIONED_DATASETS:
        raise AigcError(f"text-to-image scores need a captioned canvas dataset ({', '.join(CAPTIONED_DATASETS)}); "
                        f"{data.name} has no layout to check the images against")
    layout = canvas_layout(data, "test")
    evaluators = item_evaluators(data, cache_dir)
    real = load_dataset(data, "test").images
    typical = _typical_ink(real, layout)
    position_of = {int(row): i for i, row in enumerate(chosen)}
    generated_layout = dataclasses.replace(layout, items=layout.items[chosen], held_out=layout.held_out[chosen],
                                           captions=[layout.captions[i] for i in chosen])
    generated_rows = {name: np.array([position_of[int(r)] for r in rows], dtype=np.int64)
                      for name, rows in captions_sets.items()}
    return {
        "evaluators": [{"dataset": e.info["dataset"], "image_size": e.info["image_size"], "sha256": e.info["sha256"],
                        "held_out_accuracy": e.info["held_out_accuracy"]} for e in evaluators],
        "generated": score_canvases(images, generated_layout, generated_rows, evaluators, typical),
        "real_test": score_canvases(real[chosen], generated_layout, generated_rows, evaluators, typical),
    }
