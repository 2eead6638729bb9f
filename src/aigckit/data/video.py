"""Video data: clips stored as uint8 (N, T, C, H, W) and served as float32 in [-1, 1] one batch at a time; and
clips of bouncing digits, Moving MNIST's construction (Srivastava et al. 2015, https://arxiv.org/abs/1502.04681),
made from our MNIST files or from the bundled 8x8 digits.

A split's clips are drawn first as a layout (which source digits, and where each one is in every frame: numpy's
PCG64 with a fixed seed per split), cheaply and deterministically; their pixels are rendered from it once, resized
to data.image_size, and kept in the decode cache as frames (N * T, 1, S, S). `clip_layout` gives the layout.
The `-frames` datasets serve the same clips frame by frame, each frame a one-frame clip with its clip's labels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..config import DataConfig
from ..errors import DataError
from .base import ImageDataset, data_identity, data_root, files_digest, load_dataset, register_dataset
from .decode_cache import CacheEntry, Decoded
from .transforms import pixels_to_model_range, resize_pixels

__all__ = ["VideoDataset", "ClipRecipe", "RECIPES", "ClipLayout", "bouncing_layout", "render_clips", "clip_layout",
           "standard_test_file", "STANDARD_TEST_FILE", "load_moving_mnist", "load_moving_digits",
           "load_moving_mnist_frames", "load_moving_digits_frames"]


class VideoDataset:
    """Clips stored as uint8 (N, T, C, H, W), served as float32 in [-1, 1] one batch at a time, with optional
    labels (N, K) int64 (bouncing digits: the class of each of a clip's K digits).

    The pixels are an in-memory array or a read-only memory map of the decode cache; a subset keeps the clips it
    selects as an index into them, as ImageDataset does, so it never copies a memory-mapped set into RAM.
    """

    def __init__(self, pixels: np.ndarray | Tensor, labels: Tensor | None, classes: list[str], *,
                 rows: np.ndarray | None = None) -> None:
        pixels = pixels.numpy() if isinstance(pixels, Tensor) else pixels
        if pixels.dtype != np.uint8 or pixels.ndim != 5 or pixels.shape[2] not in (1, 3) \
                or pixels.shape[3] != pixels.shape[4]:
            raise DataError(f"a video loader gave pixels {pixels.dtype} {tuple(pixels.shape)}; give uint8 "
                            f"(N, T, C, H, W) with 1 or 3 channels and square frames")
        self.storage = pixels  # uint8 (M, T, C, H, W): all clips, those of this set and any others
        self.rows = np.arange(len(pixels), dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
        if labels is not None and (labels.ndim != 2 or len(labels) != len(self.rows)):
            raise DataError(f"a video loader gave labels {tuple(labels.shape)} for {len(self.rows)} clips; give "
                            f"(N, K) labels, K per clip")
        self.labels, self.classes = labels, classes

    def __len__(self) -> int:
        return len(self.rows)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if isinstance(self.storage, np.memmap) and self.storage.filename:  # a spawned worker maps the file
            state["storage"] = (Path(self.storage.filename), self.storage.shape)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if isinstance(state["storage"], tuple):
            path, shape = state["storage"]
            state["storage"] = np.load(path, mmap_mode="r").reshape(shape)  # the cache holds (M * T, C, H, W)
        self.__dict__.update(state)

    @property
    def videos(self) -> Tensor:
        """The whole set as float32 in [-1, 1], (N, T, C, H, W), converted on each access: for small sets."""
        return self.batch(torch.arange(len(self)))["videos"]

    @property
    def pixels(self) -> Tensor:
        """The whole set as stored, uint8 (N, T, C, H, W), copied on each access."""
        return torch.from_numpy(self.storage[self.rows])

    @property
    def frames(self) -> int:
        """Frames per clip, T."""
        return self.storage.shape[1]

    @property
    def channels(self) -> int:
        """Colour channels: 1 or 3."""
        return self.storage.shape[2]

    @property
    def image_size(self) -> int:
        """A frame's side in pixels."""
        return self.storage.shape[-1]

    @property
    def num_classes(self) -> int:
        """Number of classes a label takes; 0 for unlabelled data."""
        return len(self.classes) if self.labels is not None else 0

    @property
    def model_facts(self) -> dict[str, Any]:
        """What a video model takes from the data: image_size, channels, frames, num_classes, and
        labels_per_video (K of the (B, K) labels; 0 for unlabelled data)."""
        return {"image_size": self.image_size, "channels": self.channels, "frames": self.frames,
                "num_classes": self.num_classes, "labels_per_video": 0 if self.labels is None else self.labels.shape[1]}

    def batch(self, indices: Tensor, *, flip: np.ndarray | None = None) -> dict[str, Tensor]:
        """The clips at `indices` (positions in this set): {"videos": (B, T, C, H, W) float32 in [-1, 1],
        "labels": (B, K) int64 if labelled}; one read of the storage for the whole batch.

        flip: (B,) bool; every frame of the clips where it is True is flipped left-right.
        """
        indices = torch.as_tensor(indices, dtype=torch.int64)
        pixels = self.storage[self.rows[indices.numpy()]]  # (B, T, C, H, W) uint8, a copy
        if flip is not None and flip.any():
            pixels[flip] = pixels[flip, ..., ::-1]
        out = {"videos": pixels_to_model_range(pixels)}
        if self.labels is not None:
            out["labels"] = self.labels[indices]
        return out

    def single_frames(self) -> VideoDataset:
        """Every frame of these clips as a one-frame clip labelled with its clip's labels, clip by clip; the pixels
        are shared."""
        T = self.frames
        storage = self.storage.reshape(-1, 1, *self.storage.shape[2:])  # (M * T, 1, C, H, W): a view
        rows = (self.rows[:, None] * T + np.arange(T)).ravel()
        labels = self.labels.repeat_interleave(T, dim=0) if self.labels is not None else None
        return VideoDataset(storage, labels, self.classes, rows=rows)

    def subset(self, indices: Tensor) -> VideoDataset:
        """A dataset with only the clips at `indices` (positions in this set); the pixels are shared."""
        indices = torch.as_tensor(indices, dtype=torch.int64)
        labels = self.labels[indices] if self.labels is not None else None
        return VideoDataset(self.storage, labels, self.classes, rows=self.rows[indices.numpy()])


# ---- bouncing digits: the layout (what moves where), then the pixels


@dataclass
class ClipLayout:
    """What each clip of bouncing digits shows, on its canvas before any resize to data.image_size.

    rows: int64 (N, K), the source split's row (image) of each of the clip's K digits.
    labels: int64 (N, K), their classes.
    positions: float64 (N, T, K, 2), each digit's top-left corner (y, x) in canvas pixels in every frame, in
        [0, canvas - glyph]; the digit is drawn at the nearest whole pixel (`corners`).
    velocities: float64 (N, T, K, 2), the velocity (pixels per frame) with which each digit leaves frame t.
    canvas, glyph: the frame's side and a digit's side, in pixels.
    """

    rows: np.ndarray
    labels: np.ndarray
    positions: np.ndarray
    velocities: np.ndarray
    canvas: int
    glyph: int

    @property
    def corners(self) -> np.ndarray:
        """int64 (N, T, K, 2): the pixel where each digit's top-left pixel is drawn in each frame."""
        return np.rint(self.positions).astype(np.int64)


def bouncing_layout(labels: np.ndarray, clips: int, *, frames: int, num_digits: int, canvas: int, glyph: int,
                    step: float, seed: int) -> ClipLayout:
    """The layout of `clips` clips of `num_digits` digits drawn from a source split with these `labels`.

    As in Srivastava et al.'s generator: each digit starts at a uniform random place with a uniform random
    direction and moves `step` x (canvas - glyph) pixels per frame in a straight line (their step_length 0.1 of
    the free range: 3.6 pixels on 64x64 frames); at a border it is reflected (the overshoot mirrored, that velocity
    component reversed), so its speed never changes and it never leaves the frame.
    """
    free = canvas - glyph  # a corner's range on each axis
    if len(labels) == 0:
        raise DataError("bouncing digits need at least one source digit; give a non-empty source split")
    if not (0 < step < 1 and free > 0):  # one reflection per frame at most
        raise DataError(f"bouncing digits need 0 < step < 1 and a glyph smaller than the canvas, got step {step}, "
                        f"glyph {glyph}, canvas {canvas}")
    rng = np.random.default_rng(seed)
    # every draw has a fixed count, so no draw depends on another's outcome
    rows = rng.integers(0, len(labels), (clips, num_digits))
    position = rng.random((clips, num_digits, 2)) * free  # (N, K, 2) top-left (y, x)
    angle = rng.random((clips, num_digits)) * 2 * np.pi
    velocity = step * free * np.stack([np.sin(angle), np.cos(angle)], axis=-1)  # (N, K, 2) pixels per frame
    positions = np.empty((clips, frames, num_digits, 2))
    velocities = np.empty_like(positions)
    for t in range(frames):
        positions[:, t], velocities[:, t] = position, velocity
        position = position + velocity
        low, high = position < 0, position > free
        position = np.where(low, -position, np.where(high, 2 * free - position, position))  # mirrored overshoot
        velocity = np.where(low | high, -velocity, velocity)
    return ClipLayout(rows.astype(np.int64), np.asarray(labels, dtype=np.int64)[rows], positions, velocities,
                      canvas, glyph)


def _render(rows: np.ndarray, corners: np.ndarray, glyphs: np.ndarray, canvas: int) -> np.ndarray:
    """uint8 (n, T, canvas, canvas): glyph rows[:, k] pasted at corners[:, t, k] for every k, combined with
    np.maximum (ink over black, overlapping digits as in the standard data)."""
    n, frames, num_digits, _ = corners.shape
    glyph = glyphs.shape[-1]
    out = np.zeros((n, frames, canvas, canvas), dtype=np.uint8)
    # every glyph-sized window of every frame, (n, T, canvas - glyph + 1, same, glyph, glyph), a view of `out`:
    # indexing it by (clip, frame, y, x) moves whole windows, 20x faster than indexing each pixel
    windows = np.lib.stride_tricks.sliding_window_view(out, (glyph, glyph), axis=(2, 3), writeable=True)
    clip, frame = np.arange(n)[:, None], np.arange(frames)[None, :]
    for k in range(num_digits):  # one digit per clip and frame at a time: no two writes hit one window
        y, x = corners[:, :, k, 0], corners[:, :, k, 1]  # (n, T)
        ink = glyphs[rows[:, k]][:, None]  # (n, 1, glyph, glyph)
        windows[clip, frame, y, x] = np.maximum(windows[clip, frame, y, x], ink)
    return out


def render_clips(layout: ClipLayout, glyphs: np.ndarray) -> np.ndarray:
    """The clips of `layout` as uint8 (N, T, canvas, canvas) frames, from the source split's images `glyphs`,
    uint8 (M, glyph, glyph)."""
    return _render(layout.rows, layout.corners, glyphs, layout.canvas)


# ---- the datasets


@dataclass(frozen=True)
class ClipRecipe:
    """How a bouncing-digits dataset is made: its source image dataset and that one's image side (glyph), the
    canvas side, frames per clip, digits per clip, step (a share of canvas - glyph per frame) and clips per split
    (test None: the test split is the validation split, as for the bundled digits)."""

    source: str
    glyph: int
    canvas: int
    frames: int
    num_digits: int
    step: float
    clips: dict[str, int | None]


RECIPES = {
    # the standard construction; 10,000 training clips (200,000 frames) are plenty for our CPU-sized models
    "moving-mnist": ClipRecipe("mnist", 28, 64, 20, 2, 0.1, {"train": 10_000, "val": 1_000, "test": 10_000}),
    # a small variant for fast tests: one bundled 8x8 digit, 2 pixels a frame on 16x16 frames
    "moving-digits": ClipRecipe("digits", 8, 16, 8, 1, 0.25, {"train": 2_048, "val": 256, "test": None}),
}
SEEDS = {"train": 16_41, "val": 16_42, "test": 16_43}
CLIP_FORMAT = 1  # the clip construction; a change makes new identities, so no stale cache entry is read
STANDARD_TEST_FILE = "mnist_test_seq.npy"  # Srivastava et al.'s test set: uint8 (20, 10000, 64, 64), frames first
CHUNK = 256  # clips rendered and resized at a time


def _recipe(config: DataConfig) -> ClipRecipe:
    if config.name not in RECIPES:
        raise DataError(f"{config.name!r} has no bouncing-digit clips; use one of {', '.join(RECIPES)}")
    return RECIPES[config.name]


def _source_split(config: DataConfig, split: str) -> str:
    return "val" if split == "test" and _recipe(config).clips["test"] is None else split


def _source_config(config: DataConfig) -> DataConfig:
    """The MNIST or digits config whose split supplies the digits, at their own size (same files and roots)."""
    recipe = _recipe(config)
    return DataConfig(name=recipe.source, root=config.root, image_size=recipe.glyph,
                      val_fraction=config.val_fraction, download=config.download)


def standard_test_file(config: DataConfig, split: str) -> Path | None:
    """moving-mnist's test split: mnist_test_seq.npy in data.root or data.root/moving-mnist, when it is there."""
    if config.name != "moving-mnist" or split != "test":
        return None
    root = data_root(config)
    for path in (root / STANDARD_TEST_FILE, root / "moving-mnist" / STANDARD_TEST_FILE):
        if path.is_file():
            return path
    return None


def _clips_source(config: DataConfig, split: str) -> dict[str, Any]:
    """The standard test file (its folder and a digest of its name, size and time), or the clip construction's
    version and the identity of the source split the digits come from."""
    if (path := standard_test_file(config, split)) is not None:
        return {"root": str(path.parent.resolve()), "files_sha256": files_digest([path], path.parent)}
    return {"clips": CLIP_FORMAT, "source": data_identity(_source_config(config), _source_split(config, split))}


def _planned(config: DataConfig, split: str) -> tuple[ClipLayout, ImageDataset]:
    """The split's layout and the source split whose images it moves."""
    recipe, source_split = _recipe(config), _source_split(config, split)
    source = load_dataset(_source_config(config), source_split)
    if len(source) == 0:
        raise DataError(f"{config.name}: the {source_split} split of {recipe.source} is empty (data.val_fraction is "
                        f"{config.val_fraction}); set data.val_fraction above 0")
    layout = bouncing_layout(source.labels.numpy(), recipe.clips[source_split], frames=recipe.frames,
                             num_digits=recipe.num_digits, canvas=recipe.canvas, glyph=recipe.glyph,
                             step=recipe.step, seed=SEEDS[source_split])
    return layout, source


def clip_layout(config: DataConfig, split: str) -> ClipLayout:
    """The layout of the clips `load_dataset(config, split)` serves, without rendering them."""
    if standard_test_file(config, split) is not None:
        raise DataError(f"{config.name} test reads {STANDARD_TEST_FILE}, whose clips have no layout; move the file "
                        f"out of data.root to use generated test clips")
    return _planned(config, split)[0]


def _write_frames(entry: CacheEntry, clips: int, frames: int, size: int,
                  render: Callable[[int, int], np.ndarray]) -> Decoded:
    """Fill the entry's (clips * frames, 1, size, size) .npy with render(start, stop) -> uint8 (n, T, H, W)
    frames CHUNK clips at a time, resized to `size`; commit it (unlabelled: labels come from the layout)."""
    with entry.writing() as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(clips * frames, 1, size, size))
        for start in range(0, clips, CHUNK):
            stop = min(start + CHUNK, clips)
            block = render(start, stop)  # (n, T, H, W)
            out[start * frames:stop * frames] = resize_pixels(block.reshape(-1, 1, *block.shape[-2:]), size)
        out.flush()
        del out
    return entry.commit(None, [], [])


def _load_standard(config: DataConfig, path: Path) -> VideoDataset:
    """Srivastava et al.'s mnist_test_seq.npy, uint8 (T, N, H, W), as N unlabelled clips resized to image_size."""
    try:
        array = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as error:
        raise DataError(f"{path} is not a readable .npy file ({error}); fetch Moving MNIST's {STANDARD_TEST_FILE} "
                        f"again or remove it") from None
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[2] != array.shape[3]:
        raise DataError(f"{path} holds {array.dtype} {array.shape}; {STANDARD_TEST_FILE} is uint8 frames-first "
                        f"(T, N, H, W), (20, 10000, 64, 64) as published")
    frames, clips, size = array.shape[0], array.shape[1], config.image_size

    def render(start: int, stop: int) -> np.ndarray:
        return np.ascontiguousarray(np.asarray(array[:, start:stop]).transpose(1, 0, 2, 3))  # (n, T, H, W)

    decoded = CacheEntry(data_identity(config, "test")).get(
        lambda entry: _write_frames(entry, clips, frames, size, render))
    return VideoDataset(decoded.pixels.reshape(clips, frames, 1, size, size), None, [])


def _load_clips(config: DataConfig, split: str) -> VideoDataset:
    if (path := standard_test_file(config, split)) is not None:
        return _load_standard(config, path)
    layout, source = _planned(config, split)  # recomputed on every load: milliseconds
    clips, frames, size = len(layout.rows), layout.positions.shape[1], config.image_size

    def decode(entry: CacheEntry) -> Decoded:
        glyphs, corners = source.pixels.numpy()[:, 0], layout.corners  # (M, glyph, glyph), (N, T, K, 2)
        return _write_frames(entry, clips, frames, size, lambda start, stop: _render(
            layout.rows[start:stop], corners[start:stop], glyphs, layout.canvas))

    decoded = CacheEntry(data_identity(config, split)).get(decode)
    return VideoDataset(decoded.pixels.reshape(clips, frames, 1, size, size), torch.from_numpy(layout.labels),
                        source.classes)


@register_dataset("moving-mnist", "Moving MNIST: clips of 2 MNIST digits bouncing in 64x64 frames, 20 frames, resized "
                  "to data.image_size; 10k/1k/10k seeded clips labelled with their digits; test reads the published "
                  "mnist_test_seq.npy (unlabelled) when it is in data.root", source=_clips_source)
def load_moving_mnist(config: DataConfig, split: str) -> VideoDataset:
    """Moving MNIST for `split`: train/val clips draw digits from the train/val partition of MNIST's training
    files, test clips from t10k, or the published test file when present."""
    return _load_clips(config, split)


@register_dataset("moving-digits", "clips of one bundled 8x8 digit bouncing in 16x16 frames, 8 frames, resized to "
                  "data.image_size; 2,048/256 seeded clips labelled with their digit; no files needed",
                  source=_clips_source)
def load_moving_digits(config: DataConfig, split: str) -> VideoDataset:
    """Bouncing bundled digits for `split`; 'test' is the validation split, as for `digits`."""
    return _load_clips(config, split)


def _frames_of(clips: str) -> Callable[[DataConfig, str], Any]:
    return lambda config, split: _clips_source(replace(config, name=clips), split)


@register_dataset("moving-mnist-frames", "every frame of moving-mnist's clips as a one-frame clip labelled with its "
                  "clip's two digits: trains a video model's image layers first (model.init_from)",
                  source=_frames_of("moving-mnist"))
def load_moving_mnist_frames(config: DataConfig, split: str) -> VideoDataset:
    """moving-mnist's clips for `split`, served frame by frame (VideoDataset.single_frames)."""
    return load_dataset(replace(config, name="moving-mnist"), split).single_frames()


@register_dataset("moving-digits-frames", "every frame of moving-digits' clips as a one-frame clip labelled with "
                  "its clip's digit (the small variant, for tests)", source=_frames_of("moving-digits"))
def load_moving_digits_frames(config: DataConfig, split: str) -> VideoDataset:
    """moving-digits' clips for `split`, served frame by frame (VideoDataset.single_frames)."""
    return load_dataset(replace(config, name="moving-digits"), split).single_frames()
