"""Turning pixel arrays into model inputs: [-1, 1] float tensors of one square size."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["to_model_range", "resize", "quantise_8bit"]


def to_model_range(pixels: np.ndarray | Tensor, max_value: float = 255.0) -> Tensor:
    """Pixels in [0, max_value], (N, C, H, W) -> float32 in [-1, 1]."""
    x = torch.as_tensor(np.array(pixels, dtype=np.float32))  # a copy: IDX arrays are read-only views
    return x / max_value * 2.0 - 1.0


def resize(images: Tensor, size: int) -> Tensor:
    """Resize (N, C, H, W) to (N, C, size, size): area-averaged down, bilinear up; stays in [-1, 1]."""
    if images.shape[-2:] == (size, size):
        return images
    if size < images.shape[-1]:
        out = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    else:
        out = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    return out.clamp(-1.0, 1.0)


def quantise_8bit(images: Tensor) -> Tensor:
    """Images in [-1, 1] snapped to the nearest of the 256 levels of 8-bit pixels (v / 255 * 2 - 1, v = 0..255):
    the image as a PNG would store it, the data a discretised likelihood gives a probability to."""
    return torch.round((images.clamp(-1.0, 1.0) + 1.0) * 127.5) / 127.5 - 1.0
