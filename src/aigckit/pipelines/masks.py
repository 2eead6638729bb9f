"""Masks for inpainting evaluation: True marks a pixel to repaint (white in a mask PNG)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["centre_box", "half_image", "random_strokes", "MASKS"]


def centre_box(size: int, fraction: float = 0.5, generator: torch.Generator | None = None) -> Tensor:
    """A centred square covering `fraction` (in (0, 1]) of each side: (size, size) bool."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    side = max(1, round(size * fraction))
    start = (size - side) // 2
    mask = torch.zeros(size, size, dtype=torch.bool)
    mask[start:start + side, start:start + side] = True
    return mask


def half_image(size: int, side: str = "right", generator: torch.Generator | None = None) -> Tensor:
    """One half of the image (right, left, top or bottom): (size, size) bool."""
    mask = torch.zeros(size, size, dtype=torch.bool)
    half = size // 2
    regions = {"right": (slice(None), slice(half, None)), "left": (slice(None), slice(0, half)),
               "bottom": (slice(half, None), slice(None)), "top": (slice(0, half), slice(None))}
    if side not in regions:
        raise ValueError(f"unknown side {side!r}; known: {', '.join(regions)}")
    mask[regions[side]] = True
    return mask


def random_strokes(size: int, strokes: int = 4, width: float = 0.08, generator: torch.Generator | None = None) -> Tensor:
    """Random thick line segments, as scribbled damage: (size, size) bool."""
    g = generator or torch.Generator().manual_seed(0)
    ys, xs = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    mask = torch.zeros(size, size, dtype=torch.bool)
    radius = max(0.75, width * size)
    for _ in range(strokes):
        (x0, y0, angle, length) = torch.rand(4, generator=g).tolist()
        x0, y0, length, angle = x0 * size, y0 * size, (0.3 + 0.5 * length) * size, angle * 2 * math.pi
        dx, dy = math.cos(angle), math.sin(angle)
        # distance from each pixel to the segment (x0, y0) + s (dx, dy), 0 <= s <= length
        s = ((xs - x0) * dx + (ys - y0) * dy).clamp(0, length)
        distance = ((xs - x0 - s * dx) ** 2 + (ys - y0 - s * dy) ** 2).sqrt()
        mask |= distance <= radius
    return mask


MASKS = {"centre-box": centre_box, "half": half_image, "strokes": random_strokes}
