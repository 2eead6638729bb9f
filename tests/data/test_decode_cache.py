"""uint8 storage, the decode cache (hits, invalidation, skipped files, interrupted decodes) and parallel decoding."""

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aigckit.config import DataConfig
from aigckit.data import imagefolder, load_dataset
from aigckit.data.transforms import pixels_to_model_range, quantise_8bit, resize, to_model_range
from aigckit.errors import DataError



def write_idx(path, array):
    """An IDX file as on yann.lecun.com (as in test_datasets.py)."""
    import gzip
    import struct

    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def write_folder(root, n, *, classes=("a", "b"), size=(12, 10)):
    """n small RGB PNGs with random pixels, spread over class sub-folders; their paths."""
    rng = np.random.default_rng(n)
    paths = []
    for i in range(n):
        folder = root / classes[i % len(classes)] if classes else root
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{i:04d}.png"
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def reference_pixels(path, size, mode="RGB"):
    """The file decoded as the old loader did: convert, centre-crop, bicubic resize; (C, H, W) uint8."""
    with Image.open(path) as image:
        pixels = np.asarray(imagefolder._square(image.convert(mode), size))
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


@pytest.fixture
def decodes(monkeypatch):
    """Counts the files decoded in this process (folders of one chunk are decoded in-process)."""
    calls = []
    real = imagefolder._decode_chunk

    def counting(npy, paths, start, mode, size):
        calls.extend(paths)
        return real(npy, paths, start, mode, size)

    monkeypatch.setattr(imagefolder, "_decode_chunk", counting)
    return calls


def cache_files(suffix=".json"):
    """The files of the decode cache (AIGCKIT_CACHE is each test's own, tests/data/conftest.py) ending in suffix."""
    folder = Path(os.environ["AIGCKIT_CACHE"]) / "datasets"
    return sorted(p for p in folder.iterdir() if p.name.endswith(suffix)) if folder.is_dir() else []


def labels_of(paths):
    return [0 if p.parent.name == "a" else 1 for p in paths]


def test_storage_is_uint8_and_batches_are_the_old_float_conversion(tmp_path):
    levels = np.arange(256, dtype=np.uint8).reshape(1, 1, 16, 16)
    assert torch.equal(pixels_to_model_range(levels), to_model_range(levels))  # all 256 levels, bit for bit
    digits = load_dataset(DataConfig(name="digits", image_size=8))
    assert digits.storage.dtype == np.uint8 and digits.pixels.shape[1:] == (1, 8, 8)
    indices = torch.tensor([5, 0, 99, 5])
    batch = digits.batch(indices)
    assert batch["images"].dtype == torch.float32
    assert torch.equal(batch["images"], to_model_range(digits.pixels[indices].numpy()))
    assert torch.equal(digits.images[indices], batch["images"]) and torch.equal(digits.labels[indices],
                                                                                  batch["labels"])
    # digits hold 0..16: stored as the nearest 8-bit level, within half a level of the old v / 16 * 2 - 1
    from sklearn.datasets import load_digits

    old = to_model_range(load_digits().images[:, None], max_value=16.0)[torch.as_tensor(digits.rows)]
    assert (digits.images - old).abs().max() <= 1 / 255 + 1e-6
    # resized in float, then rounded: the 8-bit image of the old float resize
    big = load_dataset(DataConfig(name="digits", image_size=16))
    old16 = resize(old, 16)
    assert (big.images - quantise_8bit(old16)).abs().max() <= 2 / 255 + 1e-6  # a tie may round either way
    assert (big.images == quantise_8bit(old16)).float().mean() > 0.999

    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (30, 28, 28)), rng.integers(0, 10, 30)
    for split, n in (("train", 30), ("t10k", 30)):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", images[:n])
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", labels[:n])
    for _ in range(2):  # decoded, then from the cache: the same values
        test = load_dataset(DataConfig(name="mnist", root=str(tmp_path), image_size=28, download=False), "test")
        assert test.storage.dtype == np.uint8 and isinstance(test.storage, np.memmap)
        assert torch.equal(test.images[:, 0], torch.as_tensor(images, dtype=torch.float32) / 255 * 2 - 1)


def test_subsets_of_a_memory_map_share_it_and_copy_nothing(tmp_path):
    write_folder(tmp_path, 40)
    config = DataConfig(name="imagefolder", root=str(tmp_path), image_size=8, val_fraction=0.25)
    train, val = load_dataset(config, "train"), load_dataset(config, "val")
    assert isinstance(train.storage, np.memmap) and not train.storage.flags.writeable
    assert train.storage.filename == val.storage.filename and len(train.storage) == 40  # one decode, two splits
    assert sorted(np.concatenate([train.rows, val.rows]).tolist()) == list(range(40))
    part = train.subset(torch.tensor([3, 1]))
    assert part.storage is train.storage and part.rows.tolist() == train.rows[[3, 1]].tolist()
    assert torch.equal(part.images, train.images[[3, 1]]) and torch.equal(part.labels, train.labels[[3, 1]])
    pickled = pickle.dumps(part)  # as a DataLoader worker started by spawn receives it: the file's name
    assert len(pickled) < 2000 and isinstance(pickle.loads(pickled).storage, np.memmap)
    assert torch.equal(pickle.loads(pickled).images, part.images)


def test_a_cache_hit_opens_fast_and_decodes_nothing(tmp_path, decodes):
    paths = write_folder(tmp_path / "photos", 30)
    config = DataConfig(name="imagefolder", root=str(tmp_path / "photos"), image_size=8, val_fraction=0.2)
    first = load_dataset(config, "train")
    assert len(decodes) == 30 and len(cache_files()) == 1
    paths = sorted(paths, key=lambda p: p.relative_to(tmp_path).parts)  # a/..., then b/...
    expected = np.stack([reference_pixels(p, 8) for p in paths])
    assert np.array_equal(first.storage, expected)  # the old loader's pixels, row for row
    assert first.classes == ["a", "b"] and first.labels.tolist() == [labels_of(paths)[r] for r in first.rows]
    started = time.perf_counter()
    again, val = load_dataset(config, "train"), load_dataset(config, "val")
    assert time.perf_counter() - started < 0.5
    assert len(decodes) == 30  # the cache served both splits
    assert torch.equal(again.images, first.images) and len(again) + len(val) == 30


def test_a_touched_file_or_another_shaping_decodes_again(tmp_path, decodes):
    paths = write_folder(tmp_path, 10, classes=())
    config = DataConfig(name="imagefolder", root=str(tmp_path), image_size=8, val_fraction=0.0)
    load_dataset(config)
    Image.new("RGB", (12, 10), (255, 0, 0)).save(paths[3])
    os.utime(paths[3], ns=(1, 1))  # new contents, and a time that differs from the old one whatever the clock
    red = load_dataset(config)
    assert len(decodes) == 20 and red.pixels[3, :, 0, 0].tolist() == [255, 0, 0]
    load_dataset(DataConfig(name="imagefolder", root=str(tmp_path), image_size=16, val_fraction=0.0))
    grey = load_dataset(DataConfig(name="imagefolder", root=str(tmp_path), image_size=8, channels=1,
                                   val_fraction=0.0))
    assert len(decodes) == 40 and grey.channels == 1 and len(cache_files()) == 4
    load_dataset(DataConfig(name="imagefolder", root=str(tmp_path), image_size=8, val_fraction=0.5))
    assert len(decodes) == 40  # the validation share cuts rows of the same decode


def test_unreadable_files_are_skipped_with_one_line_each(tmp_path, capsys):
    paths = write_folder(tmp_path, 8)
    garbage = tmp_path / "a" / "garbage.png"
    garbage.write_bytes(b"\x89PNG garbage")
    truncated = tmp_path / "b" / "cut.png"
    truncated.write_bytes(paths[1].read_bytes()[:60])
    config = DataConfig(name="imagefolder", root=str(tmp_path), image_size=8, val_fraction=0.0)
    data = load_dataset(config)
    err = capsys.readouterr().err
    assert f"skipped {garbage}: " in err and f"skipped {truncated}: " in err
    assert len([line for line in err.splitlines() if line.startswith("skipped ")]) == 2
    kept = sorted(paths, key=lambda p: p.relative_to(tmp_path).parts)
    assert len(data) == 8 and data.labels.tolist() == labels_of(kept)  # the good rows, with their own labels
    assert np.array_equal(data.pixels.numpy(), np.stack([reference_pixels(p, 8) for p in kept]))
    load_dataset(config)  # from the cache: one line says that files are left out, and where they are listed
    assert "2 unreadable files" in capsys.readouterr().err
    meta = json.loads(open(cache_files()[0]).read())
    assert len(meta["skipped"]) == 2

    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    (only_bad / "x.png").write_bytes(b"not an image")
    (only_bad / "y.jpg").write_bytes(b"")
    with pytest.raises(DataError, match="none of the 2 files"):
        load_dataset(DataConfig(name="imagefolder", root=str(only_bad), image_size=8))
    assert len(cache_files()) == 1  # the failed folder left no entry


def test_a_failed_decode_leaves_nothing_that_looks_valid(tmp_path, monkeypatch):
    write_folder(tmp_path, 3 * imagefolder.CHUNK, classes=())
    config = DataConfig(name="imagefolder", root=str(tmp_path), image_size=8, val_fraction=0.0)
    real, calls = imagefolder._decode_chunk, []

    def interrupted(*args):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the user pressed Ctrl-C half-way
        return real(*args)

    monkeypatch.setattr(imagefolder, "_decode_chunk", interrupted)
    monkeypatch.setattr(imagefolder, "decode_workers", lambda: 1)
    with pytest.raises(KeyboardInterrupt):
        load_dataset(config)
    assert cache_files() == [] and cache_files(".npy") == [] and cache_files(".tmp") == []
    monkeypatch.setattr(imagefolder, "_decode_chunk", real)
    assert len(load_dataset(config)) == 3 * imagefolder.CHUNK


def test_a_killed_decode_leaves_nothing_that_looks_valid(tmp_path):
    """SIGKILL half-way (no clean-up code runs): no entry, and the next load decodes and removes the leftovers."""
    write_folder(tmp_path / "photos", 3 * imagefolder.CHUNK, classes=())
    code = f"""
import os, signal
from aigckit.config import DataConfig
from aigckit.data import imagefolder, load_dataset
real, calls = imagefolder._decode_chunk, []
def killed(*args):
    calls.append(1)
    if len(calls) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*args)
imagefolder._decode_chunk = killed
imagefolder.decode_workers = lambda: 1
load_dataset(DataConfig(name="imagefolder", root={str(tmp_path / "photos")!r}, image_size=8))
"""
    done = subprocess.run([sys.executable, "-c", code], env=os.environ.copy(), capture_output=True, timeout=120)
    assert done.returncode == -signal.SIGKILL
    assert cache_files() == [] and cache_files(".npy") == [] and len(cache_files(".tmp")) == 1  # a torn temp file
    data = load_dataset(DataConfig(name="imagefolder", root=str(tmp_path / "photos"), image_size=8))
    assert len(cache_files()) == 1 and cache_files(".tmp") == [] and data.storage.shape[0] == 3 * imagefolder.CHUNK


def test_parallel_decode_writes_the_same_rows_and_skips_bad_files(tmp_path, capsys):
    paths = write_folder(tmp_path, 2 * imagefolder.CHUNK + 5)
    bad = tmp_path / "b" / "zz-bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    config = DataConfig(name="imagefolder", root=str(tmp_path), image_size=8, val_fraction=0.0)
    assert imagefolder.decode_workers() >= 2  # this test is about worker processes
    data = load_dataset(config)
    assert f"skipped {bad}: " in capsys.readouterr().err
    kept = sorted(paths, key=lambda p: p.relative_to(tmp_path).parts)
    assert np.array_equal(data.pixels.numpy(), np.stack([reference_pixels(p, 8) for p in kept]))
    assert data.labels.tolist() == labels_of(kept)


def test_mnist_is_read_from_its_files_once(tmp_path, monkeypatch):
    from aigckit.data import mnist

    rng = np.random.default_rng(1)
    for split in ("train", "t10k"):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (20, 28, 28)))
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, 20))
    reads = []
    real = mnist.read_idx
    monkeypatch.setattr(mnist, "read_idx", lambda path: reads.append(path) or real(path))
    config = DataConfig(name="mnist", root=str(tmp_path), image_size=32, val_fraction=0.25, download=False)
    train, val = load_dataset(config, "train"), load_dataset(config, "val")
    assert len(reads) == 2 and (len(train), len(val)) == (15, 5) and train.storage.shape[-1] == 32
    load_dataset(config, "test")
    assert len(reads) == 4  # the t10k files are another entry


def test_a_cache_that_cannot_be_written_is_one_clear_error(tmp_path, monkeypatch):
    write_folder(tmp_path / "photos", 4)
    (tmp_path / "not-a-folder").write_text("a file where the cache should be")
    monkeypatch.setenv("AIGCKIT_CACHE", str(tmp_path / "not-a-folder"))
    with pytest.raises(DataError, match="set \\$AIGCKIT_CACHE to a writable folder"):
        load_dataset(DataConfig(name="imagefolder", root=str(tmp_path / "photos"), image_size=8))


def test_files_are_listed_in_path_order_with_the_old_digest(tmp_path):
    """The fast listing orders files as sorted(Path) did (part by part), so rows, labels and digests keep."""
    from aigckit.data.base import files_digest

    for name in ["a/x.png", "a-b/y.PNG", "a.b/z.jpg", "a/c/w.png", "B/v.png", "top.png", ".png", "a/notes.txt"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    old = sorted(p for p in tmp_path.rglob("*") if p.suffix.lower() in imagefolder.IMAGE_SUFFIXES and p.is_file())
    listing = imagefolder._listing(tmp_path)
    assert [name for name, _, _ in listing] == [p.relative_to(tmp_path).as_posix() for p in old]
    assert imagefolder._digest(listing) == files_digest(old, tmp_path)
