"""Any folder of images; one sub-folder per class makes a labelled dataset, and a `captions.jsonl` (lines
{"file": "relative/path.png", "caption": "..."}) or a sidecar `.txt` per image (same stem) a captioned one.

The folder is decoded once, by worker processes that write their rows straight into the cache's memory map,
and later loads open that map (see decode_cache.py). Unreadable files are reported one line each and skipped.
Captions are read on each load (they are small), and their files enter the data's identity.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re
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
from .captions import CAPTION_BYTES, encode_captions
from .decode_cache import CacheEntry, Decoded

__all__ = ["load_imagefolder", "IMAGE_SUFFIXES", "CAPTIONS_FILE", "decode_folder"]

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
CAPTIONS_FILE = "captions.jsonl"
LISTED_SUFFIXES = IMAGE_SUFFIXES | {".txt"}  # .txt: sidecar captions
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


def _walk(root: Path) -> tuple[list[tuple[str, int, int]], list[tuple[str, int, int]]]:
    """(path relative to root, size, mtime in ns) of every image file and every `.txt` file under root, in Path
    order (part by part: a depth-first walk with each folder's entries sorted by name). Strings, not Paths:
    50,000 files in ~0.2 s."""
    images, texts = [], []

    def walk(prefix: str) -> None:
        with os.scandir(root / prefix) as scan:
            entries = sorted(scan, key=lambda entry: entry.name)
        for entry in entries:
            if entry.is_dir():
                walk(f"{prefix}{entry.name}/")
            elif (suffix := _suffix(entry.name)) in LISTED_SUFFIXES and entry.is_file():
                stat = entry.stat()
                (texts if suffix == ".txt" else images).append((prefix + entry.name, stat.st_size, stat.st_mtime_ns))

    walk("")
    return images, texts


def _listing(root: Path) -> list[tuple[str, int, int]]:
    """(path relative to root, size, mtime in ns) of every image file under root, in Path order."""
    return _walk(root)[0]


def _image_files(config: DataConfig) -> tuple[Path, list[tuple[str, int, int]], list[tuple[str, int, int]]]:
    """data.root, the image files under it and the files that caption them (relative path, size, mtime): the
    captions file, else the images' sidecar `.txt` files, else none."""
    root = data_root(config)
    if not root.is_dir():
        raise DataError(f"imagefolder: {root} is not a folder; set data.root to a folder of images")
    files, texts = _walk(root)
    if not files:
        raise DataError(f"imagefolder: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {root}")
    stems = {_stem(name) for name, _, _ in files}
    sidecars = [text for text in texts if _stem(text[0]) in stems]
    jsonl = root / CAPTIONS_FILE
    if not jsonl.is_file():
        return root, files, sidecars
    if sidecars:
        raise DataError(f"imagefolder: {root} has both {CAPTIONS_FILE} and sidecar .txt captions (such as "
                        f"{root / sidecars[0][0]}); keep one of the two")
    stat = jsonl.stat()
    return root, files, [(CAPTIONS_FILE, stat.st_size, stat.st_mtime_ns)]


def _stem(name: str) -> str:
    """The relative path without its suffix: an image and its sidecar caption share it."""
    dot = name.rfind(".")
    return name[:dot] if dot > name.rfind("/") + 1 else name


def _digest(files: list[tuple[str, int, int]]) -> str:
    """base.files_digest of the listing: sha256 over each file's relative path, size and mtime."""
    return hashlib.sha256("".join(f"{name}\0{size}\0{mtime}\n" for name, size, mtime in files).encode()).hexdigest()


def _identity(root: Path, files: list[tuple[str, int, int]]) -> dict[str, Any]:
    return {"root": str(root.resolve()), "files_sha256": _digest(files)}


def _imagefolder_source(config: DataConfig, split: str) -> dict[str, Any]:
    """The resolved folder and a digest of every image file's path, size and time (the splits share them), and
    when captioned a digest of the caption files' paths, sizes and times."""
    root, files, caption_files = _image_files(config)
    captions = {"captions_sha256": _digest(caption_files)} if caption_files else {}
    return {**_identity(root, files), **captions}


def _read_captions(root: Path, names: list[str], caption_files: list[tuple[str, int, int]]) -> list[str]:
    """The caption of each image of `names`, from captions.jsonl or the sidecar .txt files; every image needs
    one. Lines of captions.jsonl naming files that are not images here are not used."""
    jsonl = caption_files[0][0] == CAPTIONS_FILE
    if jsonl:
        captions = _read_jsonl(root / CAPTIONS_FILE)  # by image path
    else:
        captions = {_stem(name): _read_text(root / name).strip() for name, _, _ in caption_files}  # by stem
    keys = names if jsonl else [_stem(name) for name in names]
    for name, key in zip(names, keys):
        if key not in captions:
            fix = (f'add a line {{"file": "{name}", "caption": "..."}} to {root / CAPTIONS_FILE}' if jsonl
                   else f"write its caption to {root / key}.txt")
            raise DataError(f"imagefolder: {root / name} has no caption; {fix} (every image of a captioned folder "
                            f"needs one)")
    return [captions[key] for key in keys]


def _read_jsonl(path: Path) -> dict[str, str]:
    """The captions of captions.jsonl by image path (relative, '/'-separated)."""
    captions: dict[str, str] = {}
    for number, line in enumerate(_read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            file, caption = entry["file"], entry["caption"]
        except (ValueError, KeyError, TypeError):
            file = caption = None
        if not isinstance(file, str) or not isinstance(caption, str):
            raise DataError(f"{path} line {number} is not {{\"file\": \"relative/path.png\", \"caption\": "
                            f"\"...\"}}; fix that line")
        file = Path(file).as_posix()  # "./a/x.png" names a/x.png
        if file in captions:
            raise DataError(f"{path} line {number} captions {file} a second time; keep one line per image")
        captions[file] = caption
    return captions


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{path} is not UTF-8 text; save it as UTF-8") from None


def _kept(root: Path, names: list[str], decoded: Decoded, meta: Path) -> list[str]:
    """The names of the decoded rows: `names` less the files the decode skipped ("path: reason" lines)."""
    if not decoded.skipped:
        return names
    paths = {str(root / name): name for name in names}
    # a line is "<root>/<name>: <reason>"; the reason may hold ": " too, so try each ": " as the path's end
    left_out = {paths[line[:match.start()]] for line in decoded.skipped for match in re.finditer(": ", line)
                if line[:match.start()] in paths}
    kept = [name for name in names if name not in left_out]
    if len(kept) != len(decoded.pixels):
        raise DataError(f"imagefolder: cannot tell which images the cache entry {meta} holds (it was decoded "
                        f"through another path to {root}); delete it and load again")
    return kept


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


@register_dataset("imagefolder", "any folder of images (data.root); class sub-folders make labels, captions.jsonl "
                  "or a .txt per image captions",
                  source=_imagefolder_source)
def load_imagefolder(config: DataConfig, split: str) -> ImageDataset:
    """All readable images under data.root, centre-cropped and resized; class = first sub-folder, if any;
    captions from captions.jsonl or sidecar .txt files, if any.

    Train and val (and test, the same as val) are rows of one decode of the folder."""
    root, files, caption_files = _image_files(config)
    names = [name for name, _, _ in files]
    captions = _read_captions(root, names, caption_files) if caption_files else None  # before a long decode
    entry = CacheEntry({"name": config.name, "image_size": config.image_size, "channels": config.channels,
                        **_identity(root, files)})  # the pixels do not depend on the captions
    decoded = entry.get(lambda entry: _decode(entry, root, files, config))
    if decoded.skipped:
        print(f"imagefolder: {len(decoded.skipped)} unreadable files under {root} are left out "
              f"(listed in {entry.meta})", file=sys.stderr)
    labels = torch.from_numpy(decoded.labels) if decoded.labels is not None else None
    caption_bytes = None
    if captions is not None:
        by_name = dict(zip(names, captions))
        captions = [by_name[name] for name in _kept(root, names, decoded, entry.meta)]
        if long := sum(len(caption.encode("utf-8")) > CAPTION_BYTES for caption in captions):
            print(f"imagefolder: {long} captions under {root} are longer than {CAPTION_BYTES} bytes and are cut "
                  f"there", file=sys.stderr)
        caption_bytes = encode_captions(captions)
    data = ImageDataset(decoded.pixels, labels, decoded.classes, captions=caption_bytes)
    keep = split_indices(len(data), config.val_fraction, "train" if split == "train" else "val")
    if len(keep) == 0:
        raise DataError(f"imagefolder: the {split} split of {root} is empty; add images or change data.val_fraction")
    return data.subset(keep)
