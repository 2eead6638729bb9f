"""Datasets by name: images stored as uint8 (N, C, H, W) and served in [-1, 1] per batch, with optional labels
and captions; text as token ids. `training_batches` is the training input pipeline."""

from . import audio, captions, cifar, digits, imagefolder, mnist, photos, text  # noqa: F401  each registers its loaders
from .base import DATASETS, DESCRIPTIONS, ImageDataset, load_dataset
from .batches import BatchStream
from .loader import training_batches

__all__ = ["DATASETS", "DESCRIPTIONS", "ImageDataset", "load_dataset", "BatchStream", "training_batches"]
