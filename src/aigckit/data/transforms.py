"""Turning pixel arrays into model inputs: uint8 pixels of one square size, served as [-1, 1] float tensors."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["to_model_range", "pixels_to_model_range", "resize", "resize_pixels", "quantise_8bit"]


def to_model_range(pixels: np.ndarray | Tensor, max_value: float = 255.0) -> Tensor:
    """Pixels in [0, max_value], (N, C, H, W) -> float32 in [-1, 1]."""
    x = torch.as_tensor(np.array(pixels, dtype=np.float32))  # a copy: IDX arrays are read-only views
    return x / max_value * 2.0 - 1.0


def pixels_to_model_range(pixels: np.ndarray) -> Tensor:
    """uint8 pixels (N, C, H, W) -> float32 in [-1, 1], bit for bit v / 255 * 2 - 1 as to_model_range computes it.

    In numpy, on one thread: torch's threaded kernels took 10-30 ms a batch of 64 RGB 64x64 images on a busy
    2-core machine (threads waiting for each other), numpy takes 1 ms."""
    x = pixels.astype(np.float32)
    x /= np.float32(255.0)
    x *= np.float32(2.0)
    x -= np.float32(1.0)
    return torch.from_numpy(x)


def resize(images: Tensor, size: int) -> Tensor:
    """Resize (N, C, H, W) to (N, C, size, size): area-averaged down, bilinear up; stays in [-1, 1]."""
    if images.shape[-2:] == (size, size):
        return images
    if size < images.shape[-1]:
        out = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    else:
        out = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    return out.clamp(-1.0, 1.0)


def resize_pixels(pixels: np.ndarray, size: int, *, max_value: float = 255.0, chunk: int = 4096) -> np.ndarray:
    """Pixels in [0, max_value], (N, C, H, W) -> uint8 (N, C, size, size): resized in float as `resize` does,
    then rounded to the nearest of 256 levels (what a PNG of the resized image holds).

    Works `chunk` images at a time, so the float copy never holds the whole set."""
    pixels = np.asarray(pixels)
    if pixels.dtype == np.uint8 and max_value == 255.0 and pixels.shape[-2:] == (size, size):
        return np.ascontiguousarray(pixels)
    out = np.empty((*pixels.shape[:2], size, size), dtype=np.uint8)
    for start in range(0, len(pixels), chunk):
        x = resize(to_model_range(pixels[start:start + chunk], max_value), size)
        out[start:start + chunk] = torch.round((x + 1.0) * 127.5).to(torch.uint8).numpy()
    return out


def quantise_8bit(images: Tensor) -> Tensor:
    """Images in [-1, 1] snapped to the nearest of the 256 levels of 8-bit pixels (v / 255 * 2 - 1, v = 0..255):
    the image as a PNG would store it, the data a discretised likelihood gives a probability to."""
    return torch.round((images.clamp(-1.0, 1.0) + 1.0) * 127.5) / 127.5 - 1.0
