"""The sample photos that install with our dependencies (scikit-image and scikit-learn), cut into square crops:
content images for training style-transfer networks with nothing downloaded.

Each photo gives crops of three sizes (its shorter side, a half and a quarter of it) on a grid that steps half a
crop, every crop resized to data.image_size: 9 photos make 687 crops. The split is by photo, not by crop, so no
validation crop overlaps a training one: astronaut and chelsea are held out.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image

from ..config import DataConfig
from ..errors import AigcError
from .base import ImageDataset, register_dataset

__all__ = ["load_photos", "bundled_photo", "photo_crops", "PHOTOS", "TEXTURES", "VAL_PHOTOS"]

# colour photos: content images (and styles); name -> where it ships
PHOTOS = {"astronaut": "skimage", "coffee": "skimage", "chelsea": "skimage", "rocket": "skimage",
          "hubble_deep_field": "skimage", "immunohistochemistry": "skimage", "retina": "skimage",
          "china": "sklearn", "flower": "sklearn"}
# grey textures: styles only
TEXTURES = {"brick": "skimage", "grass": "skimage", "gravel": "skimage", "camera": "skimage", "moon": "skimage"}
VAL_PHOTOS = ("astronaut", "chelsea")
CROP_FRACTIONS = (1.0, 0.5, 0.25)


@lru_cache(maxsize=None)
def bundled_photo(name: str) -> Image.Image:
    """A photo bundled with scikit-image or scikit-learn, by name (PHOTOS or TEXTURES), as a PIL image."""
    source = {**PHOTOS, **TEXTURES}.get(name)
    if source is None:
        raise AigcError(f"unknown bundled photo {name!r}; known: {', '.join(sorted({**PHOTOS, **TEXTURES}))}")
    if source == "sklearn":
        from sklearn.datasets import load_sample_image

        return Image.fromarray(load_sample_image(f"{name}.jpg"))
    from skimage import data as skimage_data

    return Image.fromarray(getattr(skimage_data, name)())


def photo_crops(image: Image.Image, size: int, channels: int) -> np.ndarray:
    """The square crops of one photo (CROP_FRACTIONS of its shorter side, stepping half a crop), resized to
    size x size: uint8 (N, channels, size, size)."""
    image = image.convert("RGB" if channels == 3 else "L")
    crops = []
    for fraction in CROP_FRACTIONS:
        side = max(1, round(min(image.size) * fraction))
        stride = max(1, side // 2)
        for top in range(0, image.height - side + 1, stride):
            for left in range(0, image.width - side + 1, stride):
                crop = image.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.LANCZOS)
                crops.append(np.asarray(crop).reshape(size, size, channels))
    return np.stack(crops).transpose(0, 3, 1, 2).copy()


def _photos_source(config: DataConfig, split: str) -> dict[str, Any]:
    """The bundled files identify the data: a digest of every photo's pixels."""
    digest = hashlib.sha256()
    for name in PHOTOS:
        digest.update(np.asarray(bundled_photo(name)).tobytes())
    return {"root": None, "content_sha256": digest.hexdigest()}


@register_dataset("photos", "the sample photos bundled with scikit-image and scikit-learn as square crops "
                            "(9 photos, 687 crops, unlabelled); no files needed", source=_photos_source)
def load_photos(config: DataConfig, split: str) -> ImageDataset:
    """Crops of the training photos, or of the held-out ones (VAL_PHOTOS) for 'val' and 'test'; RGB unless
    data.channels is 1."""
    names = [name for name in PHOTOS if (name in VAL_PHOTOS) == (split != "train")]
    pixels = np.concatenate([photo_crops(bundled_photo(name), config.image_size, config.channels or 3)
                             for name in names])
    return ImageDataset(pixels, None, [])
