"""scikit-learn's bundled handwritten digits: 1,797 images of 8x8 pixels, 10 classes, no download."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch

from ..config import DataConfig
from .base import ImageDataset, register_dataset, split_indices
from .transforms import resize_pixels

__all__ = ["load_digits"]


def _bunch():  # noqa: ANN202 - a sklearn Bunch
    from sklearn.datasets import load_digits as sklearn_digits

    return sklearn_digits()


def _digits_source(config: DataConfig, split: str) -> dict[str, Any]:
    """The bundled arrays themselves identify the data: a digest of images and targets."""
    bunch = _bunch()
    digest = hashlib.sha256(np.ascontiguousarray(bunch.images, dtype=np.float64).tobytes())
    digest.update(np.ascontiguousarray(bunch.target, dtype=np.int64).tobytes())
    return {"root": None, "content_sha256": digest.hexdigest()}


@register_dataset("digits", "scikit-learn's bundled handwritten digits (1,797 images, 8x8, 10 classes); no files needed",
                  source=_digits_source)
def load_digits(config: DataConfig, split: str) -> ImageDataset:
    """Digits for `split`; there is no official test set, so 'test' is the validation split.

    Not cached: the bundled arrays load and resize in about 30 ms, less than a cache lookup costs here."""
    bunch = _bunch()
    pixels = resize_pixels(bunch.images[:, None], config.image_size, max_value=16.0)  # (1797, 1, S, S) uint8
    labels = torch.as_tensor(bunch.target, dtype=torch.int64)
    data = ImageDataset(pixels, labels, [str(d) for d in range(10)])
    return data.subset(split_indices(len(data), config.val_fraction, "train" if split == "train" else "val"))
