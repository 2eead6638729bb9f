"""Any folder of images; one sub-folder per class makes a labelled dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..config import DataConfig
from ..errors import DataError
from .base import ImageDataset, data_root, files_digest, register_dataset, split_indices
from .transforms import to_model_range

__all__ = ["load_imagefolder", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def _square(image: Image.Image, size: int) -> Image.Image:
    """Centre-crop to a square, then resize to size x size."""
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return image.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BICUBIC)


def _image_files(config: DataConfig) -> tuple[Path, list[Path]]:
    """data.root and the image files under it, sorted."""
    root = data_root(config)
    if not root.is_dir():
        raise DataError(f"imagefolder: {root} is not a folder; set data.root to a folder of images")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise DataError(f"imagefolder: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {root}")
    return root, files


def _imagefolder_source(config: DataConfig, split: str) -> dict[str, Any]:
    """The resolved folder and a digest of every image file's path, size and time (the splits share them)."""
    root, files = _image_files(config)
    return {"root": str(root.resolve()), "files_sha256": files_digest(files, root)}


@register_dataset("imagefolder", "any folder of images (data.root); class sub-folders make labels",
                  source=_imagefolder_source)
def load_imagefolder(config: DataConfig, split: str) -> ImageDataset:
    """All images under data.root, centre-cropped and resized; class = first sub-folder, if any."""
    root, files = _image_files(config)
    class_names = sorted({p.relative_to(root).parts[0] for p in files if len(p.relative_to(root).parts) > 1})
    labelled = bool(class_names) and all(len(p.relative_to(root).parts) > 1 for p in files)
    mode = "L" if config.channels == 1 else "RGB"
    arrays = []
    for path in files:
        try:
            with Image.open(path) as image:
                arrays.append(np.asarray(_square(image.convert(mode), config.image_size)))
        except (UnidentifiedImageError, OSError) as error:
            raise DataError(f"imagefolder: cannot read {path} ({error}); remove or replace it") from None
    pixels = np.stack(arrays)
    pixels = pixels[:, None] if pixels.ndim == 3 else pixels.transpose(0, 3, 1, 2)  # (N, C, H, W)
    images = to_model_range(pixels)
    labels = torch.tensor([class_names.index(p.relative_to(root).parts[0]) for p in files]) if labelled else None
    keep = split_indices(len(files), config.val_fraction, "train" if split == "train" else "val")
    if len(keep) == 0:
        raise DataError(f"imagefolder: the {split} split of {root} is empty; add images or change data.val_fraction")
    return ImageDataset(images, labels, class_names if labelled else []).subset(keep)
