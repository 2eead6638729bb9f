"""Datasets by name: images stored as uint8 (N, C, H, W) and served in [-1, 1] per batch, with optional labels
and captions; videos as (N, T, C, H, W) the same way; text as token ids. `training_batches` is the training input
pipeline."""

from . import audio, captions, cifar, digits, imagefolder, mnist, photos, text, video  # noqa: F401  each registers
from .base import DATASETS, DESCRIPTIONS, ImageDataset, load_dataset
from .batches import BatchStream
from .loader import training_batches
from .video import VideoDataset

__all__ = ["DATASETS", "DESCRIPTIONS", "ImageDataset", "VideoDataset", "load_dataset", "BatchStream",
           "training_batches"]
