"""Image tensors <-> PIL images and sample grids, written atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .atomic import atomic_path
from .errors import AigcError

__all__ = ["to_pil", "make_grid", "grid_image", "save_grid", "from_pil"]


def to_pil(images: Tensor) -> list[Image.Image]:
    """(B, C, H, W) in [-1, 1] -> list of PIL images ('L' for 1 channel, 'RGB' for 3)."""
    pixels = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    arrays = pixels.permute(0, 2, 3, 1).numpy()  # (B, H, W, C)
    return [Image.fromarray(a[:, :, 0] if a.shape[2] == 1 else a) for a in arrays]


def from_pil(image: Image.Image, channels: int) -> Tensor:
    """A PIL image -> (C, H, W) float32 in [-1, 1] with `channels` 1 or 3."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")
    array = np.asarray(image.convert("L" if channels == 1 else "RGB"), dtype=np.float32)
    array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    return torch.from_numpy(array.copy()) / 127.5 - 1.0


def make_grid(images: Tensor, nrow: int, padding: int = 2) -> Tensor:
    """Tile (B, C, H, W) into one (C, H', W') image with `nrow` images per row and a dark border."""
    if nrow < 1:
        raise AigcError(f"a grid needs at least 1 image per row, got {nrow}")
    B, C, H, W = images.shape
    rows = (B + nrow - 1) // nrow
    grid = torch.full((C, rows * (H + padding) + padding, nrow * (W + padding) + padding), -1.0)
    for i in range(B):
        r, c = divmod(i, nrow)
        top, left = padding + r * (H + padding), padding + c * (W + padding)
        grid[:, top:top + H, left:left + W] = images[i].detach().float().cpu()
    return grid


def grid_image(images: Tensor, nrow: int = 8, upscale: int = 1) -> Image.Image:
    """Images as one PIL grid; `upscale` enlarges small images with nearest pixels."""
    image = to_pil(make_grid(images, nrow)[None])[0]
    if upscale > 1:
        image = image.resize((image.width * upscale, image.height * upscale), Image.Resampling.NEAREST)
    return image


def save_grid(images: Tensor, path: str | Path, nrow: int = 8, upscale: int = 1) -> Path:
    """Save images as one PNG grid (atomically); `upscale` enlarges small images with nearest pixels."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise AigcError(f"{path}: grids are written as PNG; give a file name ending in .png")
    image = grid_image(images, nrow, upscale)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return path
