"""CIFAR-10 from the standard python batches in `cifar-10-batches-py/`.

Those batches are pickles. We read them with an unpickler that builds only plain containers and
numpy arrays, so a tampered file cannot run code.
"""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import DataConfig
from ..errors import DataError
from .base import ImageDataset, data_root, files_digest, find_files, register_dataset, split_indices
from .decode_cache import Decoded, cached_decode
from .transforms import resize_pixels

__all__ = ["read_cifar_batch", "CIFAR_FILES"]

CIFAR_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

# The only globals a CIFAR batch refers to: numpy's array reconstruction (numpy 1 and 2 module names),
# and _codecs.encode, which protocol-2 pickles written by Python 3 use to rebuild bytes.
_ALLOWED = {
    ("_codecs", "encode"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _ArraysOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):  # noqa: ANN201 - pickle's signature
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) from one CIFAR-10 python batch file."""
    try:
        batch = _ArraysOnlyUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
        raise DataError(f"{path} is not a CIFAR-10 python batch ({error}); delete it and fetch it again") from None
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise DataError(f"{path} holds arrays of shape {data.shape}, expected (N, 3072); delete it and fetch it again")
    return data.reshape(-1, 3, 32, 32), labels


def _fetch_cifar(config: DataConfig) -> Path:
    """Folder with the batches; downloads and unpacks the archive when allowed and reachable."""
    root = data_root(config)
    for folder in (root / "cifar-10-batches-py", root / "cifar10" / "cifar-10-batches-py", root):
        if all((folder / name).is_file() for name in CIFAR_FILES):
            return folder
    if config.download:
        try:
            archive = find_files(config, "cifar10", ["cifar-10-python.tar.gz"], [CIFAR_URL.rsplit("/", 1)[0] + "/"])
            with tarfile.open(archive / "cifar-10-python.tar.gz") as tar:
                tar.extractall(root, filter="data")
            return root / "cifar-10-batches-py"
        except (DataError, OSError, tarfile.TarError):
            pass
    raise DataError(f"cifar10: expected cifar-10-batches-py/{{{','.join(CIFAR_FILES)}}} in {root}; "
                    f"unpack {CIFAR_URL} there or set data.root to the folder holding cifar-10-batches-py")


def _batch_names(split: str) -> list[str]:
    return ["test_batch"] if split == "test" else CIFAR_FILES[:5]


def _cifar_source(config: DataConfig, split: str) -> dict[str, Any]:
    """The folder of batches and a digest of the split's batch files (names, sizes, times)."""
    folder = _fetch_cifar(config)
    return {"root": str(folder.resolve()),
            "files_sha256": files_digest([folder / name for name in _batch_names(split)], folder)}


@register_dataset("cifar10", "CIFAR-10 (50k/10k, 32x32 RGB, 10 classes) from the standard python batches",
                  source=_cifar_source)
def load_cifar10(config: DataConfig, split: str) -> ImageDataset:
    """CIFAR-10 for `split`: 'train'/'val' partition data_batch_1..5, 'test' is test_batch."""
    folder = _fetch_cifar(config)

    def decode() -> Decoded:
        parts = [read_cifar_batch(folder / name) for name in _batch_names(split)]
        images = np.concatenate([p[0] for p in parts])
        return Decoded(resize_pixels(images, config.image_size), np.concatenate([p[1] for p in parts]), CLASSES)

    identity = {"name": config.name, "image_size": config.image_size, **_cifar_source(config, split)}
    decoded = cached_decode(identity, decode)
    data = ImageDataset(decoded.pixels, torch.from_numpy(decoded.labels), CLASSES)
    return data if split == "test" else data.subset(split_indices(len(data), config.val_fraction, split))
