"""scikit-learn's bundled handwritten digits: 1,797 images of 8x8 pixels, 10 classes, no download."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch

from ..config import DataConfig
from .base import ImageDataset, register_dataset, split_indices
from .transforms import resize, to_model_range

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
    """Digits for `split`; there is no official test set, so 'test' is the validation split."""
    bunch = _bunch()
    images = to_model_range(bunch.images[:, None], max_value=16.0)  # (1797, 1, 8, 8), values 0..16
    indices = split_indices(len(images), config.val_fraction, "train" if split == "train" else "val")
    labels = torch.as_tensor(bunch.target, dtype=torch.int64)
    return ImageDataset(resize(images[indices], config.image_size), labels[indices],
                        [str(d) for d in range(10)])
