"""Datasets by name: images in [-1, 1] as (N, C, H, W) tensors with optional labels."""

from . import cifar, digits, imagefolder, mnist, text  # noqa: F401  each registers its loaders
from .base import DATASETS, DESCRIPTIONS, ImageDataset, load_dataset
from .batches import BatchStream

__all__ = ["DATASETS", "DESCRIPTIONS", "ImageDataset", "load_dataset", "BatchStream"]
