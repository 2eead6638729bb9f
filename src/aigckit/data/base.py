"""The dataset registry and the in-memory image dataset every image family reads."""

from __future__ import annotations

import hashlib
import json
import os
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..atomic import atomic_path
from ..config import DataConfig
from ..errors import DataError
from ..registry import Registry

__all__ = ["ImageDataset", "DATASETS", "load_dataset", "data_root", "find_files", "split_indices", "data_identity",
           "data_fingerprint", "files_digest"]


@dataclass
class ImageDataset:
    """Images (N, C, H, W) float32 in [-1, 1] with optional labels (N,) int64."""

    images: Tensor
    labels: Tensor | None
    classes: list[str]

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def num_classes(self) -> int:
        """Number of classes; 0 for unlabelled data."""
        return len(self.classes) if self.labels is not None else 0

    @property
    def model_facts(self) -> dict[str, int]:
        """What an image model takes from the data: image_size, channels and num_classes."""
        return {"image_size": self.images.shape[-1], "channels": self.channels, "num_classes": self.num_classes}

    @property
    def channels(self) -> int:
        """Colour channels: 1 or 3."""
        return self.images.shape[1]

    def batch(self, indices: Tensor) -> dict[str, Tensor]:
        """The batch at `indices`: {"images": (B, C, H, W), "labels": (B,) if labelled}."""
        out = {"images": self.images[indices]}
        if self.labels is not None:
            out["labels"] = self.labels[indices]
        return out

    def subset(self, indices: Tensor) -> ImageDataset:
        """A dataset with only the rows at `indices`."""
        labels = self.labels[indices] if self.labels is not None else None
        return ImageDataset(self.images[indices], labels, self.classes)


# A loader takes the config and a split ("train", "val" or "test") and returns the dataset.
DATASETS: Registry[Callable[[DataConfig, str], ImageDataset]] = Registry("dataset")
DESCRIPTIONS: dict[str, str] = {}
# A source names what a loader reads for a split (the resolved folder and a digest of its files, or a digest of
# bundled arrays), as JSON values; data_identity adds the shaping. Caches of evaluation results key on it.
Source = Callable[[DataConfig, str], dict[str, Any]]
SOURCES: dict[str, Source] = {}


def register_dataset(name: str, description: str, *, source: Source | None = None) -> Callable:
    """Register a loader under `name` with a one-line description for `aigckit datasets`, and what identifies
    the files it reads (`source`), which image datasets must give."""
    DESCRIPTIONS[name] = description
    if source is not None:
        SOURCES[name] = source
    return DATASETS.register(name)


def _check_split(split: str) -> None:
    if split not in ("train", "val", "test"):
        raise DataError(f"unknown split {split!r}; use train, val or test")


def _loader(config: DataConfig) -> Callable[[DataConfig, str], ImageDataset]:
    try:
        return DATASETS.get(config.name)
    except Exception as error:
        raise DataError(f"data.name: {error}") from None


def load_dataset(config: DataConfig, split: str = "train") -> ImageDataset:
    """Load the dataset named in `config` for `split`: 'train', 'val' or 'test'."""
    _check_split(split)
    return _loader(config)(config, split)


def data_identity(config: DataConfig, split: str) -> dict[str, Any]:
    """What identifies the images `load_dataset(config, split)` returns, as JSON values: the dataset's name,
    split, shaping (size, channels, validation share) and its source (resolved folder and a digest of the
    files' names, sizes and modification times, or a digest of bundled arrays)."""
    _check_split(split)
    _loader(config)
    if config.name not in SOURCES:
        raise DataError(f"{config.name} names no source for its files, so results on it cannot be cached safely; "
                        f"register the loader with a source")
    return {"name": config.name, "split": split, "image_size": config.image_size, "channels": config.channels,
            "val_fraction": config.val_fraction, **SOURCES[config.name](config, split)}


def data_fingerprint(config: DataConfig, *splits: str) -> str:
    """A short hash (16 hex digits) of the identities of `splits` of the data in `config`."""
    identities = [data_identity(config, split) for split in splits]
    return hashlib.sha256(json.dumps(identities, sort_keys=True).encode()).hexdigest()[:16]


def files_digest(paths: Iterable[Path], root: Path) -> str:
    """sha256 over each file's path relative to `root`, size and modification time (ns), in the given order."""
    digest = hashlib.sha256()
    for path in paths:
        stat = path.stat()
        digest.update(f"{path.relative_to(root).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def split_indices(n: int, val_fraction: float, split: str) -> Tensor:
    """A fixed, seed-independent train/val partition of range(n) (the same on every machine)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(20240601))
    n_val = int(round(n * val_fraction))
    return order[n_val:].sort().values if split == "train" else order[:n_val].sort().values


def data_root(config: DataConfig) -> Path:
    """data.root, else $AIGCKIT_DATA, else ~/.cache/aigckit/data."""
    root = config.root or os.environ.get("AIGCKIT_DATA") or Path.home() / ".cache" / "aigckit" / "data"
    return Path(root).expanduser()


def find_files(config: DataConfig, folder: str, names: Sequence[str], urls: Sequence[str] = ()) -> Path:
    """The directory holding all of `names`: data root or root/folder; download them if allowed.

    Raises DataError listing the expected files when they are missing and cannot be fetched.
    """
    root = data_root(config)
    for candidate in (root, root / folder):
        if all((candidate / name).is_file() for name in names):
            return candidate
    target = root / folder
    if config.download and urls:
        try:
            target.mkdir(parents=True, exist_ok=True)
            for name in names:
                if not (target / name).is_file():
                    _download(urls, name, target / name)
            return target
        except OSError:
            pass  # no network: fall through to the message listing the files
    raise DataError(
        f"{config.name}: expected {', '.join(names)} in {root} or {target}; "
        f"put the files there or set data.root (or $AIGCKIT_DATA) to the folder holding them"
    )


def _download(mirrors: Sequence[str], name: str, path: Path) -> None:
    """Fetch `name` from the first mirror that answers; write atomically."""
    last_error: OSError | None = None
    for mirror in mirrors:
        try:
            with atomic_path(path) as tmp, urllib.request.urlopen(f"{mirror}{name}", timeout=10) as response, \
                    open(tmp, "wb") as out:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
            return
        except OSError as error:
            last_error = error
    raise last_error or OSError(f"no mirror for {name}")
