import gzip
import os
import pickle
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from aigckit.config import DataConfig
from aigckit.data import BatchStream, load_dataset
from aigckit.data.base import data_fingerprint, data_identity
from aigckit.errors import DataError


def write_idx(path, array: np.ndarray) -> None:
    """An IDX file exactly as on yann.lecun.com: magic 0x0000080N, big-endian sizes, then uint8 data."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_digits_shape_range_labels_and_split():
    train = load_dataset(DataConfig(name="digits", image_size=16), "train")
    val = load_dataset(DataConfig(name="digits", image_size=16), "val")
    assert train.images.shape[1:] == (1, 16, 16) and len(train) + len(val) == 1797
    assert train.images.min() >= -1 and train.images.max() <= 1 and train.images.max() > 0.9
    assert set(train.labels.tolist()) == set(range(10)) and train.num_classes == 10
    # deterministic and disjoint: no validation image equals a training image
    again = load_dataset(DataConfig(name="digits", image_size=16), "val")
    assert torch.equal(val.images, again.images)
    native = load_dataset(DataConfig(name="digits", image_size=8), "val").images.flatten(1)
    native_train = load_dataset(DataConfig(name="digits", image_size=8), "train").images.flatten(1)
    assert (torch.cdist(native, native_train).min(dim=1).values > 0).float().mean() > 0.99


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_idx_files(tmp_path, name):
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (20, 28, 28)), rng.integers(0, 10, 20)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images[:5])
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels[:5])
    config = DataConfig(name=name, root=str(tmp_path), image_size=28, val_fraction=0.25, download=False)
    train, val, test = (load_dataset(config, s) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (15, 5, 5)
    expected = torch.as_tensor(images[:5], dtype=torch.float32) / 255 * 2 - 1
    assert torch.allclose(test.images[:, 0], expected)
    assert test.labels.tolist() == labels[:5].tolist()


def test_idx_in_a_subfolder_named_after_the_dataset(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for split, n in (("train", 10), ("t10k", 4)):
        write_idx(folder / f"{split}-images-idx3-ubyte.gz", np.zeros((n, 28, 28)))
        write_idx(folder / f"{split}-labels-idx1-ubyte.gz", np.zeros(n))
    assert len(load_dataset(DataConfig(name="mnist", root=str(tmp_path), download=False), "test")) == 4


def test_missing_files_are_listed(tmp_path):
    with pytest.raises(DataError) as info:
        load_dataset(DataConfig(name="mnist", root=str(tmp_path), download=False))
    assert "train-images-idx3-ubyte.gz" in str(info.value) and "train-labels-idx1-ubyte.gz" in str(info.value)


def test_corrupt_idx_files_are_refused(tmp_path):
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(10))
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    config = DataConfig(name="mnist", root=str(tmp_path), download=False)
    with pytest.raises(DataError, match="not a readable .gz"):
        load_dataset(config)
    with gzip.open(tmp_path / "train-images-idx3-ubyte.gz", "wb") as f:  # header promises more than is there
        f.write(struct.pack(">HBB3I", 0, 8, 3, 10, 28, 28) + bytes(100))
    with pytest.raises(DataError, match="truncated"):
        load_dataset(config)


def write_cifar(folder, n_per_batch=4):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"batch_label": name.encode(), b"labels": rng.integers(0, 10, n_per_batch).tolist(),
                 b"data": rng.integers(0, 256, (n_per_batch, 3072)).astype(np.uint8),
                 b"filenames": [b"x.png"] * n_per_batch}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    return batch


def test_cifar_python_batches(tmp_path):
    last = write_cifar(tmp_path / "cifar-10-batches-py")
    test = load_dataset(DataConfig(name="cifar10", root=str(tmp_path), image_size=32, download=False), "test")
    assert test.images.shape == (4, 3, 32, 32)
    red = torch.as_tensor(last[b"data"][:, :1024].reshape(4, 32, 32), dtype=torch.float32) / 255 * 2 - 1
    assert torch.allclose(test.images[:, 0], red) and test.labels.tolist() == last[b"labels"]
    assert len(load_dataset(DataConfig(name="cifar10", root=str(tmp_path), val_fraction=0.2, download=False))) == 16


def test_cifar_refuses_code_in_pickles(tmp_path):
    write_cifar(tmp_path / "cifar-10-batches-py")

    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps({b"data": Evil()}))
    with pytest.raises(DataError, match="refusing to load builtins.print"):
        load_dataset(DataConfig(name="cifar10", root=str(tmp_path), download=False), "test")


def test_imagefolder_with_classes(tmp_path):
    for cls, value in (("cats", 0), ("dogs", 255)):
        (tmp_path / cls).mkdir()
        for i in range(5):
            Image.new("RGB", (40, 30), (value, value, value)).save(tmp_path / cls / f"{i}.png")
    data = load_dataset(DataConfig(name="imagefolder", root=str(tmp_path), image_size=16, val_fraction=0.0))
    assert data.images.shape == (10, 3, 16, 16) and data.classes == ["cats", "dogs"]
    assert torch.all(data.images[data.labels == 0] == -1) and torch.all(data.images[data.labels == 1] == 1)
    grey = load_dataset(DataConfig(name="imagefolder", root=str(tmp_path), image_size=8, channels=1,
                                   val_fraction=0.0))
    assert grey.channels == 1


def test_imagefolder_without_classes_and_broken_files(tmp_path):
    for i in range(3):
        Image.new("L", (8, 8), 128).save(tmp_path / f"{i}.png")
    data = load_dataset(DataConfig(name="imagefolder", root=str(tmp_path), image_size=8, val_fraction=0.0))
    assert data.labels is None and data.num_classes == 0
    (tmp_path / "broken.png").write_bytes(b"\x89PNG garbage")  # skipped, with its line: see test_decode_cache.py
    assert len(load_dataset(DataConfig(name="imagefolder", root=str(tmp_path), val_fraction=0.0))) == 3


def test_unknown_dataset_suggests_a_name():
    with pytest.raises(DataError, match="did you mean 'mnist'"):
        load_dataset(DataConfig(name="mnsit"))


def test_batch_stream_is_a_function_of_the_index_and_splits_ranks():
    data = load_dataset(DataConfig(name="digits", image_size=8))
    a, b = BatchStream(data, 8, seed=3), BatchStream(data, 8, seed=3)
    assert torch.equal(a.batch_at(500)["images"], b.batch_at(500)["images"])  # no need to replay 0..499
    ranks = [BatchStream(data, 4, seed=3, rank=r, world_size=2).batch_at(7)["labels"] for r in range(2)]
    one_process = BatchStream(data, 8, seed=3).batch_at(7)["labels"]
    assert torch.equal(torch.cat(ranks), one_process)
    with pytest.raises(DataError, match="lower train.batch_size"):
        BatchStream(data, 5000, seed=0)


def test_data_identity_tells_apart_roots_contents_and_shaping(tmp_path):
    def folder(name, shade):
        root = tmp_path / name
        root.mkdir()
        for i in range(4):
            Image.new("L", (8, 8), shade + i).save(root / f"{i}.png")
        return root

    first, second = folder("first", 10), folder("second", 10)  # the same pictures in two folders
    config = DataConfig(name="imagefolder", root=str(first), image_size=8)
    identity = data_identity(config, "test")
    assert identity["root"] == str(first.resolve()) and identity["name"] == "imagefolder"
    assert data_fingerprint(config, "test") == data_fingerprint(DataConfig(name="imagefolder", root=str(first),
                                                                           image_size=8), "test")
    others = [DataConfig(name="imagefolder", root=str(second), image_size=8),
              DataConfig(name="imagefolder", root=str(first), image_size=16),
              DataConfig(name="imagefolder", root=str(first), image_size=8, channels=1),
              DataConfig(name="imagefolder", root=str(first), image_size=8, val_fraction=0.5)]
    prints = {data_fingerprint(c, "test") for c in others} | {data_fingerprint(config, "test")}
    assert len(prints) == 5
    assert data_fingerprint(config, "train") != data_fingerprint(config, "test")
    before = data_fingerprint(config, "test")
    Image.new("L", (8, 8), 200).save(first / "0.png")  # changed contents under the same names
    os.utime(first / "0.png", ns=(1, 1))
    changed = data_fingerprint(config, "test")
    assert changed != before
    (first / "4.png").write_bytes((first / "1.png").read_bytes())  # one more file
    assert data_fingerprint(config, "test") not in (before, changed)


def test_data_identity_of_file_datasets_and_the_bundled_digits(tmp_path):
    roots = [tmp_path / "a", tmp_path / "b"]
    for seed, root in enumerate(roots):
        root.mkdir()
        rng = np.random.default_rng(seed)
        for split, n in (("train", 10), ("t10k", 4)):
            write_idx(root / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
            write_idx(root / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, n))
    mnist = [DataConfig(name="mnist", root=str(root), download=False) for root in roots]
    assert data_fingerprint(mnist[0], "test") != data_fingerprint(mnist[1], "test")
    assert data_identity(mnist[0], "test")["root"] == str(roots[0].resolve())
    write_cifar(tmp_path / "c" / "cifar-10-batches-py")
    cifar = DataConfig(name="cifar10", root=str(tmp_path / "c"), download=False)
    assert data_fingerprint(cifar, "test") != data_fingerprint(cifar, "train")
    digits = data_identity(DataConfig(name="digits", image_size=8), "test")
    assert digits["root"] is None and len(digits["content_sha256"]) == 64
    with pytest.raises(DataError, match="unknown split"):
        data_identity(DataConfig(name="digits"), "everything")


def test_download_takes_the_first_mirror_that_answers_and_never_leaves_a_partial_file(tmp_path):
    """The real download code, on file:// mirrors (no network here): a dead mirror is skipped, the file lands
    whole, and when no mirror has it nothing is left behind."""
    from aigckit.data.base import _download

    source = tmp_path / "mirror"
    source.mkdir()
    (source / "train.gz").write_bytes(b"\x1f\x8b" + bytes(range(256)) * 100)
    target = tmp_path / "data" / "train.gz"
    target.parent.mkdir()
    _download([(tmp_path / "dead").as_uri() + "/", source.as_uri() + "/"], "train.gz", target)
    assert target.read_bytes() == (source / "train.gz").read_bytes()
    with pytest.raises(OSError):
        _download([source.as_uri() + "/"], "missing.gz", tmp_path / "data" / "missing.gz")
    assert sorted(p.name for p in target.parent.iterdir()) == ["train.gz"]
