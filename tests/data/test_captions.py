"""Captions: their bytes, the captioned canvases (MNIST / Fashion-MNIST from ../shared/data), imagefolder captions."""

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from aigckit.config import DataConfig
from aigckit.data import ImageDataset, load_dataset
from aigckit.data.base import data_fingerprint
from aigckit.data.captions import (CAPTION_BYTES, HELD_OUT, POSITIONS, canvas_layout, decode_captions,
                                   encode_captions, held_out_pairs, parse_caption)
from aigckit.data.mnist import FASHION_CLASSES
from aigckit.errors import DataError

SHARED = Path(__file__).parents[3] / "shared" / "data"  # the copies beside the repository
needs_mnist = pytest.mark.skipif(not (SHARED / "mnist" / "t10k-images-idx3-ubyte.gz").is_file(),
                                 reason="../shared/data/mnist is not here")
needs_fashion = pytest.mark.skipif(not (SHARED / "fashion-mnist" / "t10k-images-idx3-ubyte.gz").is_file(),
                                   reason="../shared/data/fashion-mnist is not here")
MNIST = DataConfig(name="captioned-mnist", root=str(SHARED / "mnist"), download=False)
FASHION = DataConfig(name="captioned-fashion-mnist", root=str(SHARED / "fashion-mnist"), download=False)
SPLITS = ("train", "val", "test")


@pytest.fixture(scope="module")
def canvases(tmp_path_factory):
    """captioned-mnist's three splits and their layouts, rendered once for the module in a cache of its own."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIGCKIT_CACHE", str(tmp_path_factory.mktemp("module-cache")))
        return {split: (load_dataset(MNIST, split), canvas_layout(MNIST, split)) for split in SPLITS}


# ---- caption bytes


def test_caption_bytes_round_trip_non_ascii_text_and_cut_at_a_character_boundary():
    texts = ["a small 7 at the top left", "café au lait, 東京 🙂", ""]
    array = encode_captions(texts)
    assert array.dtype == np.uint8 and array.shape == (3, CAPTION_BYTES)
    assert decode_captions(array) == texts and decode_captions(torch.from_numpy(array).long()) == texts
    assert array[2].sum() == 0 and array[0, len(texts[0]):].sum() == 0  # zero padding
    # "é" is 2 bytes, "東" 3, "🙂" 4: a cut inside one drops the whole character
    assert decode_captions(encode_captions(["abé"], 3)) == ["ab"]
    assert decode_captions(encode_captions(["abé"], 4)) == ["abé"]
    assert decode_captions(encode_captions(["x東", "x🙂"], 3)) == ["x", "x"]
    with pytest.raises(DataError, match="NUL"):
        encode_captions(["a\0b"])
    with pytest.raises(DataError, match="no UTF-8 form"):
        encode_captions(["\ud800"])  # a lone surrogate
    with pytest.raises(DataError, match="not one string"):
        encode_captions("a small 7")
    with pytest.raises(DataError, match="not UTF-8"):
        decode_captions(np.array([[0xC3, 0x28]], dtype=np.uint8))


@given(st.text(alphabet=st.characters(blacklist_characters="\0", blacklist_categories=("Cs",))), st.integers(1, 24))
def test_encoded_captions_are_the_longest_prefix_that_fits(text, length):
    decoded = decode_captions(encode_captions([text], length))[0]
    assert text.startswith(decoded) and len(decoded.encode("utf-8")) <= length
    if decoded != text:  # the next character would not have fitted
        assert len(text[:len(decoded) + 1].encode("utf-8")) > length


# ---- the caption grammar


def test_parse_caption_reads_the_grammar_and_refuses_other_text():
    digits = [str(d) for d in range(10)]
    assert parse_caption("a small 7 at the top left", digits) == [(7, 0, 0)]
    assert parse_caption("a small 7 at the top left and a large 2 at the bottom right", digits) == [(7, 0, 0),
                                                                                                (2, 1, 8)]
    assert parse_caption("a large 2 in the centre", digits) == [(2, 1, 4)]
    assert parse_caption("a large ankle boot at the top", FASHION_CLASSES) == [(9, 1, 1)]
    assert parse_caption("a small t-shirt on the left and a small shirt on the right",
                         FASHION_CLASSES) == [(0, 0, 3), (6, 0, 5)]
    for text in ["a big 7 at the top left", "an small 7 at the top left", "A small 7 at the top left",
                 "a small 7 at the top left and a small 1 on the left and a small 2 on the right",
                 "a small 7", "a small 7 at the top left ", "a small cat on the left"]:
        with pytest.raises(DataError, match="not a caption of this data"):
            parse_caption(text, digits)


def test_held_out_pairs_hold_out_one_position_per_class_and_keep_every_position():
    assert held_out_pairs(10) == HELD_OUT and [c for c, _ in HELD_OUT] == list(range(10))
    positions = [p for _, p in HELD_OUT]
    assert set(positions) == set(range(9)) and max(positions.count(p) for p in range(9)) == 2  # spread out


# ---- captioned canvases


def _pairs(items):
    """The (class, position) pairs of the present items, (K, 2)."""
    flat = items.reshape(-1, 3)
    return flat[flat[:, 0] >= 0][:, [0, 2]]


@needs_mnist
def test_held_out_pairs_only_in_test(canvases):
    held = {tuple(pair) for pair in HELD_OUT}
    for split in ("train", "val"):
        layout = canvases[split][1]
        assert not layout.held_out.any()
        seen = {tuple(pair) for pair in _pairs(layout.items).tolist()}
        assert not seen & held
        assert len(seen) == 10 * 9 - 10  # every other class/position pair appears
    test = canvases["test"][1]
    assert 0.2 < test.held_out.mean() < 0.3
    has_held = np.array([any(tuple(p) in held for p in _pairs(items[None]).tolist()) for items in test.items])
    assert np.array_equal(has_held, test.held_out)
    assert {tuple(pair) for pair in _pairs(test.items[test.held_out]).tolist()} >= held
    assert not {tuple(pair) for pair in _pairs(test.items[~test.held_out]).tolist()} & held


@needs_mnist
def test_every_caption_parses_back_to_its_layout(canvases):
    for split in SPLITS:
        data, layout = canvases[split]
        assert data.caption_texts == layout.captions
        if split == "train":
            continue  # drawn by the same code as val's: the parse of 54,000 captions would add a second
        for caption, items in zip(layout.captions, layout.items.tolist()):
            assert parse_caption(caption, data.classes) == [tuple(item) for item in items if item[0] >= 0]
        assert data.labels.tolist() == layout.items[:, 0, 0].tolist()  # the first item's class


@needs_fashion
def test_fashion_captions_name_the_items_in_lower_case_singular():
    data, layout = load_dataset(FASHION, "test"), canvas_layout(FASHION, "test")
    assert data.classes == FASHION_CLASSES and data.caption_texts == layout.captions
    for caption, items in zip(layout.captions, layout.items.tolist()):
        assert parse_caption(caption, FASHION_CLASSES) == [tuple(item) for item in items if item[0] >= 0]
    words = " ".join(layout.captions)
    assert "ankle boot" in words and "t-shirt" in words and "trouser " in words and "T-shirt" not in words


@needs_mnist
def test_two_items_sit_in_cells_two_apart_in_about_half_the_canvases(canvases):
    rows, columns = np.divmod(np.arange(9), 3)
    for split in SPLITS:
        items = canvases[split][1].items
        two = items[:, 1, 0] >= 0
        assert 0.4 < two.mean() < 0.6
        first, second = items[two, 0, 2], items[two, 1, 2]
        assert np.all((np.abs(rows[first] - rows[second]) == 2) | (np.abs(columns[first] - columns[second]) == 2))
        assert np.array_equal(items[~two, 1], np.full((int((~two).sum()), 3), -1))
        assert set(items[:, :, 1][items[:, :, 0] >= 0].tolist()) == {0, 1}  # both sizes


@needs_mnist
def test_the_ink_of_a_single_small_item_lies_in_its_cell(canvases):
    data, layout = canvases["test"]
    single_small = np.flatnonzero((layout.items[:, 1, 0] < 0) & (layout.items[:, 0, 1] == 0))
    assert len(single_small) > 1000
    pixels = data.pixels[single_small, 0].numpy().astype(np.float64)  # (n, 32, 32)
    ink = pixels.sum(axis=(1, 2))
    assert ink.min() > 0
    grid = np.arange(32) + 0.5  # pixel centres
    y = (pixels.sum(axis=2) * grid).sum(axis=1) / ink
    x = (pixels.sum(axis=1) * grid).sum(axis=1) / ink
    row, column = np.divmod(layout.items[single_small, 0, 2], 3)
    assert np.all((y // (32 / 3) == row) & (x // (32 / 3) == column))
    assert np.all(data.pixels[layout.items[:, 0, 0] < 0].numpy() == 0)  # (no canvas without a first item)


@needs_mnist
def test_canvases_are_the_same_on_every_load_and_from_a_fresh_cache(canvases):
    data, layout = canvases["test"]
    again = load_dataset(MNIST, "test")  # this test's own, empty cache (conftest.py): rendered afresh
    assert np.array_equal(again.pixels.numpy(), data.pixels.numpy()) and again.caption_texts == data.caption_texts
    assert torch.equal(again.labels, data.labels)
    assert load_dataset(MNIST, "test").storage.filename == again.storage.filename  # the second load: cached
    relayout = canvas_layout(MNIST, "test")
    assert np.array_equal(relayout.items, layout.items) and relayout.captions == layout.captions
    # a golden slice: a change to the construction must come with a new CANVAS_FORMAT (and this slice)
    assert layout.captions[:3] == ["a small 7 at the top and a large 6 at the bottom left",
                                   "a large 2 at the bottom and a small 9 at the top left",
                                   "a large 1 at the bottom right"]
    assert data.storage.shape == (10_000, 1, 32, 32) and data.storage.dtype == np.uint8
    assert len(canvases["train"][0]) + len(canvases["val"][0]) == 60_000


@needs_mnist
def test_canvas_size_changes_pixels_not_layout_and_is_checked():
    small = DataConfig(name="captioned-mnist", root=MNIST.root, image_size=24, download=False)
    data = load_dataset(small, "test")
    assert data.pixels.shape == (10_000, 1, 24, 24)
    assert np.array_equal(canvas_layout(small, "test").items, canvas_layout(MNIST, "test").items)
    with pytest.raises(DataError, match="at least 24"):
        load_dataset(DataConfig(name="captioned-mnist", root=MNIST.root, image_size=16, download=False), "test")
    with pytest.raises(DataError, match="data.flip=false"):
        load_dataset(DataConfig(name="captioned-mnist", root=MNIST.root, flip=True, download=False), "test")
    assert data_fingerprint(small, "test") != data_fingerprint(MNIST, "test")


@needs_mnist
def test_batches_subsets_and_model_facts_carry_the_captions(canvases):
    data = canvases["val"][0]
    texts = data.caption_texts
    batch = data.batch(torch.tensor([3, 0, 5]))
    assert batch["captions"].shape == (3, CAPTION_BYTES) and batch["captions"].dtype == torch.int64
    assert decode_captions(batch["captions"]) == [texts[3], texts[0], texts[5]]
    subset = data.subset(torch.tensor([5, 3]))
    assert subset.captions is data.captions and subset.caption_texts == [texts[5], texts[3]]
    assert decode_captions(subset.batch(torch.tensor([1]))["captions"]) == [texts[3]]
    prompts = data.model_facts["prompts"]
    assert len(prompts) == 8 and prompts == tuple(dict.fromkeys(texts))[:8] and prompts[0] == texts[0]
    assert {k: v for k, v in data.model_facts.items() if k != "prompts"} == {"image_size": 32, "channels": 1,
                                                                             "num_classes": 10}
    restored = pickle.loads(pickle.dumps(subset))
    assert restored.caption_texts == subset.caption_texts and torch.equal(restored.pixels, subset.pixels)


def test_uncaptioned_data_has_no_captions():
    pixels = np.zeros((3, 1, 8, 8), dtype=np.uint8)
    data = ImageDataset(pixels, None, [])
    assert data.caption_texts is None and "captions" not in data.batch(torch.tensor([0]))
    assert data.model_facts == {"image_size": 8, "channels": 1, "num_classes": 0}
    with pytest.raises(DataError, match="one row per stored image"):
        ImageDataset(pixels, None, [], captions=encode_captions(["x"]))
    captioned = ImageDataset(pixels, None, [], captions=encode_captions(["b", "a", "b"]))
    assert captioned.model_facts["prompts"] == ("b", "a")  # distinct, in order


# ---- imagefolder with captions


def _write_images(root, n):
    """n grey PNGs, image i of shade 10 * i, in class folders a/ and b/; their relative paths."""
    names = []
    for i in range(n):
        name = f"{'ab'[i % 2]}/{i}.png"
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("L", (8, 8), 10 * i).save(root / name)
        names.append(name)
    return names


def _shades_and_captions(data):
    return [int(round((v + 1) * 127.5)) for v in data.images[:, 0, 0, 0].tolist()], data.caption_texts


def test_imagefolder_reads_captions_jsonl(tmp_path):
    names = _write_images(tmp_path, 5)
    lines = [{"file": name, "caption": f"shade {10 * i} ✓"} for i, name in enumerate(names)]
    lines[0]["file"] = "./" + names[0]
    lines.append({"file": "gone.png", "caption": "an image since deleted"})  # not an image here: not used
    (tmp_path / "captions.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n\n", "utf-8")
    config = DataConfig(name="imagefolder", root=str(tmp_path), image_size=8, channels=1, val_fraction=0.0)
    data = load_dataset(config)
    shades, captions = _shades_and_captions(data)
    assert captions == [f"shade {shade} ✓" for shade in shades] and len(captions) == 5
    assert decode_captions(data.batch(torch.tensor([1]))["captions"]) == [captions[1]]
    before = data_fingerprint(config, "train")
    lines[1]["caption"] = "changed"
    (tmp_path / "captions.jsonl").write_text("\n".join(json.dumps(line) for line in lines), "utf-8")
    assert data_fingerprint(config, "train") != before  # the captions are part of the data's identity
    assert "changed" in load_dataset(config).caption_texts
    (tmp_path / "captions.jsonl").write_text("\n".join(json.dumps(line) for line in lines[1:]), "utf-8")
    with pytest.raises(DataError, match=f"{tmp_path / names[0]} has no caption; add a line"):
        load_dataset(config)
    (tmp_path / "captions.jsonl").write_text(json.dumps(lines[0]) + "\n{\"file\": 3}\n", "utf-8")
    with pytest.raises(DataError, match="line 2 is not"):
        load_dataset(config)


def test_imagefolder_reads_sidecar_captions_and_names_a_missing_one(tmp_path):
    names = _write_images(tmp_path, 4)
    for i, name in enumerate(names):
        (tmp_path / name).with_suffix(".txt").write_text(f"shade {10 * i}\n", "utf-8")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG garbage")  # skipped by the decode, with its caption
    (tmp_path / "broken.txt").write_text("never seen", "utf-8")
    config = DataConfig(name="imagefolder", root=str(tmp_path), image_size=8, channels=1, val_fraction=0.0)
    shades, captions = _shades_and_captions(load_dataset(config))
    assert captions == [f"shade {shade}" for shade in shades] and len(captions) == 4
    shades, captions = _shades_and_captions(load_dataset(config))  # from the cache: the same rows
    assert captions == [f"shade {shade}" for shade in shades]
    before = data_fingerprint(config, "train")
    (tmp_path / "a" / "2.txt").write_text("another caption", "utf-8")
    assert data_fingerprint(config, "train") != before
    (tmp_path / "a" / "0.txt").unlink()
    with pytest.raises(DataError, match=f"{tmp_path / 'a' / '0.png'} has no caption; write its caption to "
                                        f"{tmp_path / 'a' / '0'}.txt"):
        load_dataset(config)
    (tmp_path / "captions.jsonl").write_text("", "utf-8")
    with pytest.raises(DataError, match="both captions.jsonl and sidecar .txt captions"):
        load_dataset(config)


def test_positions_are_named_in_reading_order():
    assert POSITIONS[0] == "top left" and POSITIONS[4] == "centre" and POSITIONS[8] == "bottom right"
