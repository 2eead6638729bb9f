"""The dataset registry and the uint8 image dataset every image family reads."""

from __future__ import annotations

import hashlib
import json
import os
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..atomic import atomic_path
from ..config import DataConfig
from ..errors import DataError
from ..registry import Registry
from .transforms import pixels_to_model_range

__all__ = ["ImageDataset", "DATASETS", "load_dataset", "data_root", "find_files", "split_indices", "data_identity",
           "data_fingerprint", "files_digest"]


class ImageDataset:
    """Images stored as uint8 (N, C, H, W), served as float32 in [-1, 1] one batch at a time, with optional
    labels (N,) int64 and optional captions (UTF-8 bytes, see data.captions).

    The pixels are an in-memory array or a read-only memory map of the decode cache; a subset keeps the rows it
    selects as an index into them, so that it never copies a memory-mapped set into RAM.
    """

    def __init__(self, pixels: np.ndarray | Tensor, labels: Tensor | None, classes: list[str], *,
                 rows: np.ndarray | None = None, captions: np.ndarray | None = None) -> None:
        pixels = pixels.numpy() if isinstance(pixels, Tensor) else pixels
        if pixels.dtype != np.uint8 or pixels.ndim != 4 or pixels.shape[1] not in (1, 3):
            raise DataError(f"a dataset loader gave pixels {pixels.dtype} {tuple(pixels.shape)}; "
                            f"give uint8 (N, C, H, W) with 1 or 3 channels")
        self.storage = pixels  # uint8 (M, C, H, W): all rows, those of this set and any others
        self.rows = np.arange(len(pixels), dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
        if labels is not None and len(labels) != len(self.rows):
            raise DataError(f"a dataset loader gave {len(labels)} labels for {len(self.rows)} images; "
                            f"give one label per image")
        if captions is not None and (captions.dtype != np.uint8 or captions.ndim != 2
                                     or len(captions) != len(pixels)):
            raise DataError(f"a dataset loader gave captions {captions.dtype} {tuple(captions.shape)} for "
                            f"{len(pixels)} stored images; give uint8 (M, L) caption bytes, one row per stored image")
        self.labels, self.classes = labels, classes
        self.captions = captions  # uint8 (M, L) caption bytes (data.captions), indexed by rows like the storage

    def __len__(self) -> int:
        return len(self.rows)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if isinstance(self.storage, np.memmap):  # a worker process started by spawn maps the file, not a copy
            state["storage"] = Path(self.storage.filename)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if isinstance(state["storage"], Path):
            state["storage"] = np.load(state["storage"], mmap_mode="r")
        self.__dict__.update(state)

    @property
    def images(self) -> Tensor:
        """The whole set as float32 in [-1, 1], (N, C, H, W), converted on each access: for small sets."""
        return self.batch(torch.arange(len(self)))["images"]

    @property
    def pixels(self) -> Tensor:
        """The whole set as stored, uint8 (N, C, H, W), copied on each access."""
        return torch.from_numpy(self.storage[self.rows])

    @property
    def num_classes(self) -> int:
        """Number of classes; 0 for unlabelled data."""
        return len(self.classes) if self.labels is not None else 0

    @property
    def caption_texts(self) -> list[str] | None:
        """This set's captions as strings, in order; None when the data has no captions."""
        from .captions import decode_captions  # captions.py registers its datasets through this module

        return None if self.captions is None else decode_captions(self.captions[self.rows])

    @property
    def model_facts(self) -> dict[str, Any]:
        """What an image model takes from the data: image_size, channels and num_classes, and for captioned data
        "prompts", the first 8 distinct captions of the set (what sample grids show)."""
        facts: dict[str, Any] = {"image_size": self.storage.shape[-1], "channels": self.channels,
                                 "num_classes": self.num_classes}
        if self.captions is not None:
            from .captions import decode_captions

            prompts: dict[str, None] = {}  # an ordered set
            for start in range(0, len(self.rows), 256):  # decoded a block at a time: 8 are found in the first
                for text in decode_captions(self.captions[self.rows[start:start + 256]]):
                    prompts.setdefault(text)
                if len(prompts) >= 8:
                    break
            facts["prompts"] = tuple(prompts)[:8]
        return facts

    @property
    def channels(self) -> int:
        """Colour channels: 1 or 3."""
        return self.storage.shape[1]

    def batch(self, indices: Tensor, *, flip: np.ndarray | None = None) -> dict[str, Tensor]:
        """The batch at `indices` (positions in this set): {"images": (B, C, H, W) float32 in [-1, 1],
        "labels": (B,) if labelled, "captions": (B, L) int64 caption bytes if captioned}; one read of the storage
        for the whole batch.

        flip: (B,) bool; the images where it is True are flipped left-right (before the conversion to float).
        """
        indices = torch.as_tensor(indices, dtype=torch.int64)
        rows = self.rows[indices.numpy()]
        pixels = self.storage[rows]  # (B, C, H, W) uint8, a copy
        if flip is not None and flip.any():
            pixels[flip] = pixels[flip, ..., ::-1]
        out = {"images": pixels_to_model_range(pixels)}
        if self.labels is not None:
            out["labels"] = self.labels[indices]
        if self.captions is not None:
            out["captions"] = torch.from_numpy(self.captions[rows].astype(np.int64))
        return out

    def subset(self, indices: Tensor) -> ImageDataset:
        """A dataset with only the rows at `indices` (positions in this set); pixels and captions are shared."""
        indices = torch.as_tensor(indices, dtype=torch.int64)
        labels = self.labels[indices] if self.labels is not None else None
        return ImageDataset(self.storage, labels, self.classes, rows=self.rows[indices.numpy()],
                            captions=self.captions)


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
    order = torch.randperm(n, generator=torch.Generator().manual_seed(20240601)).numpy()
    n_val = int(round(n * val_fraction))
    return torch.from_numpy(np.sort(order[n_val:] if split == "train" else order[:n_val]))  # numpy: no thread pool


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
