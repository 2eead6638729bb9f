"""Decoded pixels kept under aigckit's cache: a memory-mapped uint8 `.npy` per dataset and shaping, keyed by
the data's identity (name, size, channels and a digest of its files), so a dataset is decoded once.

An entry is `<name>-<key>.npy` (pixels), `<name>-<key>.labels.npy` (when labelled) and `<name>-<key>.json`,
written last: a decode that is killed or fails leaves no JSON, so nothing that looks like a valid entry.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_path, atomic_write_text
from ..cache import default_cache_dir
from ..errors import DataError

try:
    import fcntl
except ImportError:  # Windows: no lock, so two processes that start together may both decode (same result)
    fcntl = None

__all__ = ["Decoded", "CacheEntry", "cached_decode"]

FORMAT = 1  # the layout of an entry; a change makes new keys, so old entries are never misread


@dataclass
class Decoded:
    """Decoded pixels (uint8 (N, C, H, W), a read-only memory map when they come from the cache), labels (N,)
    int64 or None, class names, and the files skipped as unreadable ("path: reason")."""

    pixels: np.ndarray
    labels: np.ndarray | None
    classes: list[str]
    skipped: list[str] = field(default_factory=list)


class CacheEntry:
    """One dataset's place in the cache: paths, loading, and committing what a decode wrote."""

    def __init__(self, identity: dict[str, Any], cache_dir: Path | None = None) -> None:
        self.identity = {"format": FORMAT, **identity}
        key = hashlib.sha256(json.dumps(self.identity, sort_keys=True).encode()).hexdigest()[:24]
        folder = (cache_dir or default_cache_dir()) / "datasets"
        stem = f"{identity['name']}-{key}"
        self.meta = folder / f"{stem}.json"
        self.pixels = folder / f"{stem}.npy"
        self.labels = folder / f"{stem}.labels.npy"
        self._lock = folder / f"{stem}.lock"

    def load(self) -> Decoded | None:
        """The cached data, or None when there is no complete entry (never decoded, or a decode was cut short)."""
        try:
            meta = json.loads(self.meta.read_text(encoding="utf-8"))
            if meta["identity"] != self.identity:
                return None
            pixels = np.load(self.pixels, mmap_mode="r")
            labels = np.load(self.labels) if meta["labelled"] else None
        except (OSError, ValueError, KeyError, TypeError):  # missing, truncated or foreign files: decode again
            return None
        if pixels.dtype != np.uint8 or list(pixels.shape) != meta["shape"] or (
                labels is not None and labels.shape != (len(pixels),)):
            return None
        return Decoded(pixels, labels, meta["classes"], meta["skipped"])

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold this entry's lock: processes that load the same data together decode it once."""
        self._lock.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock, "a") as handle:
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                if fcntl is not None:
                    fcntl.flock(handle, fcntl.LOCK_UN)

    def clear(self) -> None:
        """Remove the entry and the temporary files of decodes that were killed (call with the lock held)."""
        self.meta.unlink(missing_ok=True)  # first: from here on nothing looks valid
        for stale in self.meta.parent.glob(f".{self.pixels.stem}*.tmp"):
            stale.unlink(missing_ok=True)

    @contextmanager
    def writing(self) -> Iterator[Path]:
        """Yield a temporary path for the pixels' `.npy`; on success it becomes the entry's (not yet valid:
        `commit` writes the JSON that makes it so)."""
        with atomic_path(self.pixels) as tmp:
            yield tmp

    def get(self, decode: Callable[[CacheEntry], Decoded]) -> Decoded:
        """The cached data, else `decode(self)`, which writes and commits the entry; one process decodes at a
        time, and the others then find its entry."""
        if (hit := self.load()) is not None:
            return hit
        try:
            with self.locked():
                if (hit := self.load()) is not None:  # another process decoded it while we waited
                    return hit
                self.clear()
                return decode(self)
        except OSError as error:  # unreadable images never get here: decoders skip them or raise DataError
            raise DataError(f"cannot write decoded {self.identity['name']} images to {self.meta.parent} "
                            f"({error.strerror or error}); free space there or set $AIGCKIT_CACHE to a writable "
                            f"folder") from None

    def store(self, decoded: Decoded) -> Decoded:
        """Write arrays decoded in memory as this entry; return the entry, memory-mapped."""
        with self.writing() as tmp, open(tmp, "wb") as out:
            np.save(out, np.ascontiguousarray(decoded.pixels, dtype=np.uint8))
        return self.commit(decoded.labels, decoded.classes, decoded.skipped)

    def commit(self, labels: np.ndarray | None, classes: list[str], skipped: list[str]) -> Decoded:
        """Write the labels and then the JSON that makes the entry valid; return the entry, memory-mapped."""
        pixels = np.load(self.pixels, mmap_mode="r")
        if labels is not None:
            with atomic_path(self.labels) as tmp, open(tmp, "wb") as out:
                np.save(out, np.asarray(labels, dtype=np.int64))
        meta = {"identity": self.identity, "shape": list(pixels.shape), "labelled": labels is not None,
                "classes": classes, "skipped": skipped}
        atomic_write_text(self.meta, json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
        loaded = self.load()
        assert loaded is not None, f"{self.meta} was just written"
        return loaded


def cached_decode(identity: dict[str, Any], decode: Callable[[], Decoded]) -> Decoded:
    """The data of `identity` from the cache, or from `decode()` (arrays in memory), stored for next time."""
    return CacheEntry(identity).get(lambda entry: entry.store(decode()))
