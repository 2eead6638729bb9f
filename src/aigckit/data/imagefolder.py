"""Any folder of images; one sub-folder per class makes a labelled dataset.

The folder is decoded once, by worker processes that write their rows straight into the cache's memory map,
and later loads open that map (see decode_cache.py). Unreadable files are reported one line each and skipped.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..config import DataConfig
from ..errors import DataError
from .base import ImageDataset, data_root, register_dataset, split_indices
from .decode_cache import CacheEntry, Decoded

__all__ = ["load_imagefolder", "IMAGE_SUFFIXES", "decode_folder"]

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
CHUNK = 64  # files per task given to a worker; folders of one chunk are decoded in this process


def _square(image: Image.Image, size: int) -> Image.Image:
    """Centre-crop to a square, then resize to size x size."""
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return image.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BICUBIC)


def _suffix(name: str) -> str:
    """Path(name).suffix.lower(), without building a Path."""
    dot = name.rfind(".")
    return name[dot:].lower() if 0 < dot < len(name) - 1 else ""


def _listing(root: Path) -> list[tuple[str, int, int]]:
    """(path relative to root, size, mtime in ns) of every image file under root, in Path order (part by part:
    a depth-first walk with each folder's entries sorted by name). Strings, not Paths: 50,000 files in ~0.2 s."""
    found = []

    def walk(prefix: str) -> None:
        with os.scandir(root / prefix) as scan:
            entries = sorted(scan, key=lambda entry: entry.name)
        for entry in entries:
            if entry.is_dir():
                walk(f"{prefix}{entry.name}/")
            elif _suffix(entry.name) in IMAGE_SUFFIXES and entry.is_file():
                stat = entry.stat()
                found.append((prefix + entry.name, stat.st_size, stat.st_mtime_ns))

    walk("")
    return found


def _image_files(config: DataConfig) -> tuple[Path, list[tuple[str, int, int]]]:
    """data.root and the image files under it (relative path, size, mtime), sorted."""
    root = data_root(config)
    if not root.is_dir():
        raise DataError(f"imagefolder: {root} is not a folder; set data.root to a folder of images")
    files = _listing(root)
    if not files:
        raise DataError(f"imagefolder: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {root}")
    return root, files


def _digest(files: list[tuple[str, int, int]]) -> str:
    """base.files_digest of the listing: sha256 over each file's relative path, size and mtime."""
    return hashlib.sha256("".join(f"{name}\0{size}\0{mtime}\n" for name, size, mtime in files).encode()).hexdigest()


def _identity(root: Path, files: list[tuple[str, int, int]]) -> dict[str, Any]:
    return {"root": str(root.resolve()), "files_sha256": _digest(files)}


def _imagefolder_source(config: DataConfig, split: str) -> dict[str, Any]:
    """The resolved folder and a digest of every image file's path, size and time (the splits share them)."""
    return _identity(*_image_files(config))


def decode_workers() -> int:
    """Worker processes for a first decode: one per CPU this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _decode_chunk(npy: str, paths: list[str], start: int, mode: str, size: int) -> list[tuple[int, str]]:
    """Decode `paths` into rows start, start + 1, ... of the .npy at `npy`; return (row, reason) of failures."""
    out = np.load(npy, mmap_mode="r+")
    failed = []
    for row, path in enumerate(paths, start):
        try:
            with Image.open(path) as image:
                pixels = np.asarray(_square(image.convert(mode), size))
            out[row] = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)  # (C, H, W)
        except Exception as error:  # noqa: BLE001 - PIL raises OSError, SyntaxError, ValueError, EOFError ...
            message = str(error).replace(f" {path!r}", "").replace(path, "the file")  # the path is printed once
            failed.append((row, f"{type(error).__name__}: {message}"))
    out.flush()
    return failed


def _progress():  # noqa: ANN202 - a rich Progress
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("eta"), TimeRemainingColumn(), console=Console(stderr=True, highlight=False))


def decode_folder(paths: list[Path], npy: Path, *, mode: str, size: int, workers: int | None = None,
                  description: str = "decode") -> list[tuple[int, str]]:
    """Decode image files into the rows of an existing uint8 (N, C, size, size) `.npy`, in worker processes
    (default: one per CPU) when there is more than one chunk of files; a progress bar on stderr.

    Returns (row, reason) for each file that could not be read; its row is left as it was."""
    workers = workers or decode_workers()
    chunks = [(start, [str(p) for p in paths[start:start + CHUNK]]) for start in range(0, len(paths), CHUNK)]
    failed: list[tuple[int, str]] = []
    with _progress() as progress:
        task = progress.add_task(description, total=len(paths))
        workers = min(workers, len(chunks))
        if workers <= 1:
            for start, names in chunks:
                failed += _decode_chunk(str(npy), names, start, mode, size)
                progress.advance(task, len(names))
            return sorted(failed)
        # the platform's default start method, as torch's DataLoader uses (fork on Linux: no re-import)
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context()) as pool:
            jobs = {pool.submit(_decode_chunk, str(npy), names, start, mode, size): len(names)
                    for start, names in chunks}
            for job in as_completed(jobs):
                failed += job.result()
                progress.advance(task, jobs[job])
    return sorted(failed)


def _decode(entry: CacheEntry, root: Path, files: list[tuple[str, int, int]], config: DataConfig) -> Decoded:
    """Decode the folder into the entry's .npy (only the readable files' rows), listing each skipped file."""
    names = [name for name, _, _ in files]
    channels = config.channels or 3
    shape = (len(names), channels, config.image_size, config.image_size)
    with entry.writing() as tmp:
        np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape).flush()
        failed = decode_folder([root / name for name in names], tmp, mode="L" if channels == 1 else "RGB",
                               size=config.image_size, description=f"decode {root.name or root}")
        skipped = [f"{root / names[row]}: {reason}" for row, reason in failed]
        for line in skipped:
            print(f"skipped {line}", file=sys.stderr)
        if len(failed) == len(names):
            raise DataError(f"imagefolder: none of the {len(names)} files under {root} could be read "
                            f"(the first: {skipped[0]}); give a folder of images")
        if failed:  # keep only the good rows, copied in blocks into a second file that then takes tmp's place
            bad = {row for row, _ in failed}
            good = np.array([row for row in range(len(names)) if row not in bad])
            whole = np.load(tmp, mmap_mode="r")
            kept_tmp = tmp.with_name(tmp.name + ".kept.tmp")
            kept = np.lib.format.open_memmap(kept_tmp, mode="w+", dtype=np.uint8, shape=(len(good), *shape[1:]))
            for start in range(0, len(good), 4096):
                kept[start:start + 4096] = whole[good[start:start + 4096]]
            kept.flush()
            del kept, whole
            os.replace(kept_tmp, tmp)
            names = [names[row] for row in good]
    class_names = sorted({name.split("/")[0] for name in names if "/" in name})
    labelled = bool(class_names) and all("/" in name for name in names)
    index = {name: i for i, name in enumerate(class_names)}
    labels = np.array([index[name.split("/")[0]] for name in names]) if labelled else None
    return entry.commit(labels, class_names if labelled else [], skipped)


@register_dataset("imagefolder", "any folder of images (data.root); class sub-folders make labels",
                  source=_imagefolder_source)
def load_imagefolder(config: DataConfig, split: str) -> ImageDataset:
    """All readable images under data.root, centre-cropped and resized; class = first sub-folder, if any.

    Train and val (and test, the same as val) are rows of one decode of the folder."""
    root, files = _image_files(config)
    entry = CacheEntry({"name": config.name, "image_size": config.image_size, "channels": config.channels,
                        **_identity(root, files)})
    decoded = entry.get(lambda entry: _decode(entry, root, files, config))
    if decoded.skipped:
        print(f"imagefolder: {len(decoded.skipped)} unreadable files under {root} are left out "
              f"(listed in {entry.meta})", file=sys.stderr)
    labels = torch.from_numpy(decoded.labels) if decoded.labels is not None else None
    data = ImageDataset(decoded.pixels, labels, decoded.classes)
    keep = split_indices(len(data), config.val_fraction, "train" if split == "train" else "val")
    if len(keep) == 0:
        raise DataError(f"imagefolder: the {split} split of {root} is empty; add images or change data.val_fraction")
    return data.subset(keep)
