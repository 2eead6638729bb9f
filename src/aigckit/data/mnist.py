"""MNIST and Fashion-MNIST from the standard IDX `.gz` files (http://yann.lecun.com/exdb/mnist/)."""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import DataConfig
from ..errors import DataError
from .base import ImageDataset, files_digest, find_files, register_dataset, split_indices
from .decode_cache import Decoded, cached_decode
from .transforms import resize_pixels

__all__ = ["read_idx", "IDX_FILES"]

IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
FASHION_MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]


def read_idx(path: Path) -> np.ndarray:
    """An unsigned-byte IDX array (magic 0x0000080N, N big-endian dimension sizes, then the bytes)."""
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path} is not a readable .gz file ({error}); delete it and fetch it again") from None
    if len(data) < 4 or data[:3] != b"\x00\x00\x08":
        raise DataError(f"{path} is not an unsigned-byte IDX file (bad magic number); delete it and fetch it again")
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = struct.unpack(f">{ndim}I", data[4:header])
    if len(data) != header + int(np.prod(shape)):
        raise DataError(f"{path} is truncated or damaged (expected {shape}); delete it and fetch it again")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _idx_folder(config: DataConfig, split: str, mirrors: tuple[str, ...]) -> tuple[Path, tuple[str, str]]:
    files = IDX_FILES["test" if split == "test" else "train"]
    return find_files(config, config.name, files, mirrors), files


def _idx_source(mirrors: tuple[str, ...]):  # noqa: ANN202 - a data.base.Source
    def source(config: DataConfig, split: str) -> dict[str, Any]:
        """The folder holding the split's two IDX files and a digest of their names, sizes and times."""
        folder, files = _idx_folder(config, split, mirrors)
        return {"root": str(folder.resolve()), "files_sha256": files_digest([folder / f for f in files], folder)}

    return source


def _load_idx_dataset(config: DataConfig, split: str, mirrors: tuple[str, ...], classes: list[str]) -> ImageDataset:
    folder, files = _idx_folder(config, split, mirrors)

    def decode() -> Decoded:
        images, labels = read_idx(folder / files[0]), read_idx(folder / files[1])
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(f"{folder}: images {images.shape} and labels {labels.shape} do not match")
        return Decoded(resize_pixels(images[:, None], config.image_size), labels.astype(np.int64), classes)

    # cached: reading 60,000 images from .gz (and resizing them) takes 0.3-1 s, opening the cache milliseconds
    identity = {"name": config.name, "image_size": config.image_size, **_idx_source(mirrors)(config, split)}
    decoded = cached_decode(identity, decode)
    data = ImageDataset(decoded.pixels, torch.from_numpy(decoded.labels), classes)
    return data if split == "test" else data.subset(split_indices(len(data), config.val_fraction, split))


@register_dataset("mnist", "MNIST handwritten digits (60k/10k, 28x28, 10 classes) from the standard IDX .gz files",
                  source=_idx_source(MNIST_MIRRORS))
def load_mnist(config: DataConfig, split: str) -> ImageDataset:
    """MNIST for `split`: 'train'/'val' partition the training files, 'test' is t10k."""
    return _load_idx_dataset(config, split, MNIST_MIRRORS, [str(d) for d in range(10)])


@register_dataset("fashion-mnist", "Fashion-MNIST (60k/10k, 28x28, 10 classes) from the standard IDX .gz files",
                  source=_idx_source(FASHION_MIRRORS))
def load_fashion_mnist(config: DataConfig, split: str) -> ImageDataset:
    """Fashion-MNIST for `split`: 'train'/'val' partition the training files, 'test' is t10k."""
    return _load_idx_dataset(config, split, FASHION_MIRRORS, FASHION_CLASSES)
