"""Captions for text-to-image: their tensor form (UTF-8 bytes), and captioned canvases built from MNIST and
Fashion-MNIST ("a small 7 at the top left and a large 2 at the bottom right") with held-out class/position pairs.

A canvas places one or two items, each at one of 9 named cells of a 3x3 grid and in one of 2 sizes. What goes
where (the layout) is drawn first, cheaply and deterministically (numpy's PCG64 with a fixed seed per split); the
pixels are rendered from it once and kept in the decode cache. Evaluation reads the layout through
`canvas_layout` and reads captions back with `parse_caption`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..config import DataConfig
from ..errors import DataError
from .base import ImageDataset, data_identity, load_dataset, register_dataset
from .decode_cache import Decoded, cached_decode
from .transforms import resize_pixels

__all__ = ["CAPTION_BYTES", "encode_captions", "decode_captions", "POSITIONS", "POSITION_PHRASES", "SIZES",
           "SIZE_SCALES", "HELD_OUT", "held_out_pairs", "caption_name", "caption_text", "parse_caption", "swap_places",
           "CanvasLayout", "canvas_layout", "cell_centres", "item_box", "load_captioned_mnist",
           "load_captioned_fashion_mnist"]

CAPTION_BYTES = 96  # the default caption length in bytes; the longest canvas caption takes 81

# ---- caption bytes: batches are dicts of tensors, so captions travel as zero-padded UTF-8 bytes


def encode_captions(texts: Sequence[str], length: int = CAPTION_BYTES) -> np.ndarray:
    """Captions as uint8 (N, length): each one's UTF-8 bytes, zero-padded; a longer one is cut at the last
    character boundary that fits (never half a multi-byte character). Byte 0 is padding, so NUL is refused."""
    if isinstance(texts, str):
        raise DataError("encode_captions takes a list of captions, not one string; wrap it as [text]")
    if length < 1:
        raise DataError(f"caption length must be at least 1 byte, got {length}")
    encoded = []
    for i, text in enumerate(texts):
        try:
            encoded.append(text.encode("utf-8"))
        except UnicodeEncodeError as error:
            raise DataError(f"caption {i} ({text[:40]!r}) has no UTF-8 form ({error.reason}); "
                            f"give valid text") from None
    for i, data in enumerate(encoded):
        if b"\0" in data:
            raise DataError(f"caption {i} ({texts[i][:40]!r}) contains a NUL character, which marks padding; "
                            f"remove it")
        if len(data) > length:
            cut = length
            while (data[cut] & 0xC0) == 0x80:  # data[cut] continues a character that starts before the cut
                cut -= 1
            encoded[i] = data[:cut]
    # all bytes at once: caption i's bytes go to row i, columns 0 .. len - 1
    lengths = np.array([len(data) for data in encoded], dtype=np.int64)
    rows = np.repeat(np.arange(len(encoded)), lengths)
    columns = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    out = np.zeros((len(encoded), length), dtype=np.uint8)
    out[rows, columns] = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    return out


def decode_captions(array: np.ndarray | Tensor) -> list[str]:
    """Caption bytes (N, L) (uint8, or integer tensors as batches carry them) back to N strings."""
    array = array.cpu().numpy() if isinstance(array, Tensor) else np.asarray(array)
    if array.ndim != 2 or (array.size and (array.min() < 0 or array.max() > 255)):
        raise DataError(f"caption bytes must be (N, L) values in 0..255, got shape {array.shape}; "
                        f"give what encode_captions returns")
    texts = []
    for row in array.astype(np.uint8):
        data = row.tobytes().split(b"\0", 1)[0]
        try:
            texts.append(data.decode("utf-8"))
        except UnicodeDecodeError:
            raise DataError(f"caption bytes {data[:40]!r} are not UTF-8; give what encode_captions returns") from None
    return texts


# ---- the caption grammar: "a small 7 at the top left and a large 2 at the bottom right"

POSITIONS = ("top left", "top", "top right", "left", "centre", "right", "bottom left", "bottom", "bottom right")
POSITION_PHRASES = ("at the top left", "at the top", "at the top right", "on the left", "in the centre",
                    "on the right", "at the bottom left", "at the bottom", "at the bottom right")
SIZES = ("small", "large")
SIZE_SCALES = (0.375, 0.5625)  # an item's side as a share of the canvas side
CENTRE = POSITIONS.index("centre")


def caption_name(class_name: str) -> str:
    """How a caption names a class: lower case, the first of slash-separated names ("T-shirt/top" -> "t-shirt")."""
    return class_name.split("/")[0].lower()


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou8" else "a"


def _item_phrase(name: str, size: int, position: int) -> str:
    """'a small 7 at the top left'; the article agrees with the word after it (always a size word here)."""
    return f"{_article(SIZES[size])} {SIZES[size]} {name} {POSITION_PHRASES[position]}"


def caption_text(items: Sequence[tuple[int, int, int]], classes: Sequence[str]) -> str:
    """The caption of (class, size, position) items, in order, joined by ' and '."""
    return " and ".join(_item_phrase(caption_name(classes[c]), s, p) for c, s, p in items)


_PLACE_AT_END = re.compile("(.*) ({})$".format("|".join(re.escape(x) for x in sorted(POSITION_PHRASES, key=len,
                                                                                           reverse=True))))


def swap_places(text: str) -> str | None:
    """A two-item caption with its items' places exchanged ("a small 7 at the top and a large 6 on the left" ->
    "a small 7 on the left and a large 6 at the top"): the same words, bound the other way; None for a caption
    of one item, of two items at one place, or outside the grammar."""
    clauses = text.split(" and ")
    if len(clauses) != 2:
        return None
    matches = [_PLACE_AT_END.fullmatch(clause) for clause in clauses]
    if None in matches or matches[0].group(2) == matches[1].group(2):
        return None
    first, second = matches
    return f"{first.group(1)} {second.group(2)} and {second.group(1)} {first.group(2)}"


@functools.lru_cache(maxsize=16)
def _grammar(names: tuple[str, ...]) -> re.Pattern:
    """One or two items '<article> <size> <name> <position phrase>' joined by ' and ', six groups."""
    alternatives = [  # longest first, so that "at the top left" is tried before "at the top"
        "|".join(re.escape(x) for x in sorted(options, key=len, reverse=True))
        for options in ([f"{_article(s)} {s}" for s in SIZES], names, POSITION_PHRASES)]
    item = "({}) ({}) ({})".format(*alternatives)
    return re.compile(f"{item}(?: and {item})?")


def parse_caption(text: str, classes: Sequence[str]) -> list[tuple[int, int, int]]:
    """The (class, size index, position index) items a caption of this grammar states, in order.

    Raises DataError for text outside the grammar: one or two items 'a small|large <class> <position phrase>'
    joined by ' and ', in lower case, with the class names `classes` (as `caption_name` writes them)."""
    names = [caption_name(c) for c in classes]
    match = _grammar(tuple(names)).fullmatch(text)
    if match is None:
        raise DataError(f"{text!r} is not a caption of this data; write one or two items 'a small|large <class> "
                        f"<position>' joined by ' and ', e.g. 'a small {names[0]} at the top left and a large "
                        f"{names[-1]} on the right' (classes: {', '.join(names)})")
    groups = match.groups()
    return [(names.index(groups[i + 1]), SIZES.index(groups[i].split(" ")[1]), POSITION_PHRASES.index(groups[i + 2]))
            for i in (0, 3) if groups[i] is not None]


# ---- layouts: what goes where, drawn before (and apart from) any pixel


def held_out_pairs(num_classes: int) -> tuple[tuple[int, int], ...]:
    """The (class, position) pairs seen only in test canvases: class c at position (4c + 1) mod 9. 4 is prime to 9,
    so classes 0..8 are held out at 9 different positions, and every class and position stays in training."""
    return tuple((c, (4 * c + 1) % 9) for c in range(num_classes))


HELD_OUT = held_out_pairs(10)
SEEDS = {"train": 16_01, "val": 16_02, "test": 16_03}
TEST_HELD_OUT_SHARE = 0.25  # test canvases whose first item is a held-out pair; the others have none
_ROW, _COL = np.divmod(np.arange(9), 3)
# two items sit in cells 2 apart in row or column (top left and bottom right, left and right, ...): at most the
# jitter's few pixels of overlap. The centre has no such partner, so it only holds single items.
PARTNERS = (np.abs(_ROW[:, None] - _ROW[None]) == 2) | (np.abs(_COL[:, None] - _COL[None]) == 2)  # (9, 9) bool


@dataclass
class CanvasLayout:
    """What each canvas of a split shows.

    items: int64 (N, 2, 3), [class, size index (0 small, 1 large), position index 0..8] of the first and second
        item; the second row is -1 where a canvas has one item.
    held_out: bool (N,), the canvases with a held-out (class, position) pair (test only).
    captions: the N captions.
    """

    items: np.ndarray
    held_out: np.ndarray
    captions: list[str]


@dataclass
class _Plan:
    layout: CanvasLayout
    rows: np.ndarray  # int64 (N, 2): the split's row whose image each item shows; -1 for no second item
    jitter: np.ndarray  # int64 (N, 2, 2): each item's (dy, dx) offset from its cell's centre


def _choose(allowed: np.ndarray, uniform: np.ndarray) -> np.ndarray:
    """Per row, an index drawn uniformly among the True entries of `allowed` (N, K), given uniform (N, K)."""
    return np.where(allowed, uniform, -1.0).argmax(axis=1)


def _plan(labels: np.ndarray, classes: Sequence[str], split: str, size: int) -> _Plan:
    """The deterministic layout of one canvas per row of the split (that row's image first) on size x size."""
    n = len(labels)
    rng = np.random.default_rng(SEEDS[split])
    held = np.array([p for _, p in held_out_pairs(len(classes))])  # (K,) the held-out position of each class
    # every draw has a fixed count, so the layout never depends on branches (nor on the canvas size but jitter)
    two, forced = rng.random(n) < 0.5, rng.random(n) < TEST_HELD_OUT_SHARE
    second_row, sizes = rng.integers(0, n, n), rng.integers(0, 2, (n, 2))
    first_uniform, second_uniform = rng.random((n, 9)), rng.random((n, 9))
    jitter = rng.integers(-(size // 16), size // 16 + 1, (n, 2, 2))  # at most canvas/16 pixels
    if split != "test":
        forced[:] = False
    first, second = labels, labels[second_row]
    everywhere = np.arange(n)
    allowed = np.ones((n, 9), dtype=bool)
    allowed[everywhere, held[first]] = False
    allowed[two, CENTRE] = False
    first_position = np.where(forced, held[first], _choose(allowed, first_uniform))
    two &= first_position != CENTRE  # a held-out centre (forced) stays alone
    allowed = PARTNERS[first_position]
    allowed[everywhere[~forced], held[second[~forced]]] = False  # held-out pairs only where forced
    second_position = _choose(allowed, second_uniform)
    items = np.stack([np.stack([first, sizes[:, 0], first_position], 1),
                      np.stack([second, sizes[:, 1], second_position], 1)], 1).astype(np.int64)
    items[~two, 1] = -1
    held_out = (first_position == held[first]) | (two & (second_position == held[second]))
    phrases = [_item_phrase(caption_name(name), s, p) for name in classes for s in range(2) for p in range(9)]
    first_phrase = ((first * 2 + sizes[:, 0]) * 9 + first_position).tolist()  # indices into phrases
    second_phrase = np.where(two, (second * 2 + sizes[:, 1]) * 9 + second_position, -1).tolist()
    captions = [phrases[a] if b < 0 else f"{phrases[a]} and {phrases[b]}" for a, b in zip(first_phrase, second_phrase)]
    rows = np.stack([everywhere, np.where(two, second_row, -1)], 1).astype(np.int64)
    return _Plan(CanvasLayout(items, held_out, captions), rows, jitter.astype(np.int64))


def cell_centres(size: int) -> np.ndarray:
    """(9, 2) float (row, column) centres of the 3x3 cells of a size x size canvas, in pixels, by position index."""
    centres = (2 * np.arange(3) + 1) * size / 6
    return np.stack([centres[_ROW], centres[_COL]], 1)


def item_box(position: int | np.ndarray, size_index: int, canvas: int) -> tuple[np.ndarray, int]:
    """Where an item of this size sits in this cell before its jitter: (top-left corner(s) (..., 2) int64, side).
    Centred on the cell, moved inwards where it would cross the canvas' edge (a large item in a corner cell)."""
    side = round(canvas * SIZE_SCALES[size_index])
    corner = np.floor(cell_centres(canvas)[position] - side / 2 + 0.5).astype(np.int64)
    return np.clip(corner, 0, canvas - side), side


def _render(plan: _Plan, pixels: np.ndarray, size: int) -> np.ndarray:
    """uint8 (N, 1, size, size): each item's image resized to its size and pasted with np.maximum (ink over black)
    centred on its cell plus jitter, moved inside the canvas where it would cross its edge; canvases that share an
    item's place are pasted at once."""
    canvases = np.zeros((len(plan.rows), 1, size, size), dtype=np.uint8)
    for size_index in range(len(SIZE_SCALES)):
        side = item_box(0, size_index, size)[1]
        glyphs = resize_pixels(pixels, side)  # (M, 1, side, side), the whole source set at once
        for slot in (0, 1):
            items = plan.layout.items[:, slot]
            chosen = np.flatnonzero((items[:, 0] >= 0) & (items[:, 1] == size_index))
            places = item_box(items[chosen, 2], size_index, size)[0] + plan.jitter[chosen, slot]  # (n, 2) top-left
            places = np.clip(places, 0, size - side)  # whole items only: none loses ink at the canvas' edge
            for y0, x0 in np.unique(places, axis=0).tolist():
                here = chosen[(places[:, 0] == y0) & (places[:, 1] == x0)]
                ink = glyphs[plan.rows[here, slot]]
                canvases[here, :, y0:y0 + side, x0:x0 + side] = np.maximum(
                    canvases[here, :, y0:y0 + side, x0:x0 + side], ink)
    return canvases


# ---- the datasets

CANVAS_FORMAT = 2  # the canvas construction; a change makes new identities, so no stale cache entry is read
SOURCE_DATASETS = {"captioned-mnist": "mnist", "captioned-fashion-mnist": "fashion-mnist"}  # items from
MIN_SIZE = 24


def _source_config(config: DataConfig) -> DataConfig:
    """The MNIST or Fashion-MNIST config whose split supplies the canvases' items (the same files and roots)."""
    if config.name not in SOURCE_DATASETS:
        raise DataError(f"{config.name!r} has no canvases; use one of {', '.join(SOURCE_DATASETS)}")
    if config.image_size < MIN_SIZE:
        raise DataError(f"{config.name}: data.image_size is {config.image_size}; canvases need at least {MIN_SIZE} "
                        f"pixels for their 3x3 grid of positions, so set it to {MIN_SIZE} or more (default 32)")
    return DataConfig(name=SOURCE_DATASETS[config.name], root=config.root, image_size=28,
                      val_fraction=config.val_fraction, download=config.download)


def _canvas_source(config: DataConfig, split: str) -> dict[str, Any]:
    """The canvas construction's version and the identity of the source split it draws items from."""
    return {"canvas": CANVAS_FORMAT, "source": data_identity(_source_config(config), split)}


def canvas_layout(config: DataConfig, split: str) -> CanvasLayout:
    """The layout of the canvases `load_dataset(config, split)` shows, without rendering them."""
    source = load_dataset(_source_config(config), split)
    return _plan(source.labels.numpy(), source.classes, split, config.image_size).layout


def _load_canvases(config: DataConfig, split: str) -> ImageDataset:
    if config.flip:
        raise DataError(f"{config.name}: captions name left and right, which flipped canvases would contradict; "
                        f"set data.flip=false")
    source = load_dataset(_source_config(config), split)
    plan = _plan(source.labels.numpy(), source.classes, split, config.image_size)

    def render() -> Decoded:
        return Decoded(_render(plan, source.pixels.numpy(), config.image_size), source.labels.numpy(), source.classes)

    decoded = cached_decode(data_identity(config, split), render)  # the captions are recomputed: milliseconds
    return ImageDataset(decoded.pixels, torch.from_numpy(decoded.labels), decoded.classes,
                        captions=encode_captions(plan.layout.captions))


@register_dataset("captioned-mnist", "one or two MNIST digits placed on a canvas and captioned ('a small 7 at the "
                  "top left and a large 2 on the right'); held-out digit/position pairs only in test",
                  source=_canvas_source)
def load_captioned_mnist(config: DataConfig, split: str) -> ImageDataset:
    """Captioned MNIST canvases for `split`; labels are the first item's class."""
    return _load_canvases(config, split)


@register_dataset("captioned-fashion-mnist", "one or two Fashion-MNIST items placed on a canvas and captioned ('a "
                  "large ankle boot in the centre'); held-out item/position pairs only in test", source=_canvas_source)
def load_captioned_fashion_mnist(config: DataConfig, split: str) -> ImageDataset:
    """Captioned Fashion-MNIST canvases for `split`; labels are the first item's class."""
    return _load_canvases(config, split)
