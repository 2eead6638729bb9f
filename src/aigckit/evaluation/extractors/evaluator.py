"""A per-dataset evaluator: a small CNN classifier trained by aigckit on the dataset's training split.

Its pooled features are the FID/KID/precision-recall space for small grey datasets (MNIST, digits), the
practice recommended for MNIST-like data where Inception's ImageNet features are a poor fit; its softmax
gives the classifier score and the conditional accuracy. Training is seeded and deterministic; the weights
are cached as safetensors under <cache>/evaluators/<dataset>-<size>-<fingerprint>/ with their held-out
accuracy, where the fingerprint hashes the identity of the training and held-out data (resolved folder,
digest of the files, shaping), so two datasets with one name never share an evaluator.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from ...atomic import atomic_directory
from ...config import DataConfig
from ...data import BatchStream, load_dataset
from ...data.base import data_fingerprint, data_identity
from ...errors import AigcError

__all__ = ["EvaluatorNet", "Evaluator", "load_or_train_evaluator", "read_cached_net", "write_cached_net"]


def stem_stride(image_size: int) -> int:
    """The first layer's stride: images of 64 px and more are strided down to 32 px there, so that the evaluator
    of a 64 px dataset (spoken digits as 64x64 log-mels) trains in minutes on a CPU, not in twenty."""
    return max(1, image_size // 32)


class EvaluatorNet(nn.Module):
    """Three conv layers -> global average pool (the 128-d feature) -> linear classifier."""

    feature_dim = 128

    def __init__(self, channels: int, num_classes: int, stem: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 32, 3, stride=stem, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.Conv2d(64, 128, 3, stride=2, padding=1), nn.BatchNorm2d(128), nn.ReLU(),
        )
        self.head = nn.Linear(128, num_classes)

    def features(self, x: Tensor) -> Tensor:
        """x: (B, C, H, W) in [-1, 1] -> (B, 128)."""
        return self.body(x).mean(dim=(2, 3))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class Evaluator:
    """A trained EvaluatorNet with what identifies it: name, weights hash, held-out accuracy."""

    def __init__(self, net: EvaluatorNet, info: dict) -> None:
        self.net = net.eval()
        self.info = info

    @torch.no_grad()
    def features_and_logits(self, images: Tensor, batch_size: int = 500) -> tuple[Tensor, Tensor]:
        """Features (N, 128) and logits (N, classes) of images at the evaluator's size."""
        feats, logits = [], []
        for chunk in images.split(batch_size):
            f = self.net.features(chunk.float())
            feats.append(f)
            logits.append(self.net.head(f))
        return torch.cat(feats), torch.cat(logits)


def _accuracy(net: EvaluatorNet, images: Tensor, labels: Tensor) -> float:
    with torch.no_grad():
        predictions = torch.cat([net(chunk).argmax(1) for chunk in images.split(500)])
    return float((predictions == labels).float().mean())


def load_or_train_evaluator(data: DataConfig, cache_dir: Path, *, steps: int = 2000, seed: int = 0) -> Evaluator:
    """The evaluator for this data (its training and held-out splits), trained once and then read from the cache."""
    fingerprint = data_fingerprint(data, "train", "test")
    stem = stem_stride(data.image_size)
    shape = f"{data.image_size}-stem{stem}" if stem > 1 else f"{data.image_size}"
    folder = Path(cache_dir) / "evaluators" / f"{data.name}-{shape}-{fingerprint}"
    if (cached := read_cached_net(folder)) is not None:
        state, info = cached
        net = EvaluatorNet(info["channels"], info["num_classes"], info.get("stem_stride", 1))
        net.load_state_dict(state)
        return Evaluator(net, info)

    train = load_dataset(data, "train")
    if train.labels is None:
        raise AigcError(f"{data.name} has no labels, so no evaluator can be trained; use --extractor inception "
                        f"with --inception-weights")
    held_out = load_dataset(data, "test")
    with torch.random.fork_rng(devices=[]):  # a seeded initialisation that leaves the caller's generator alone
        torch.manual_seed(seed)
        net = EvaluatorNet(train.channels, train.num_classes, stem)
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
    batches = BatchStream(train, min(128, len(train)), seed=seed)
    for step in range(steps):
        batch = batches.batch_at(step)
        images = batch["images"]
        # small random shifts make the features describe digits, not pixel positions
        shift = torch.randint(-1, 2, (2,), generator=torch.Generator().manual_seed(seed * 7919 + step))
        images = torch.roll(images, shifts=tuple(shift.tolist()), dims=(2, 3))
        loss = F.cross_entropy(net(images), batch["labels"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        for group in optimizer.param_groups:  # cosine decay to zero
            group["lr"] = 1e-3 * (1 + torch.cos(torch.tensor(torch.pi * (step + 1) / steps)).item())
    net.eval()
    info = {"extractor": "evaluator", "dataset": data.name, "image_size": data.image_size,
            "data_fingerprint": fingerprint, "data": [data_identity(data, "train"), data_identity(data, "test")],
            "channels": train.channels, "num_classes": train.num_classes, "stem_stride": stem, "train_steps": steps,
            "seed": seed,
            "held_out_accuracy": _accuracy(net, held_out.images, held_out.labels)}
    write_cached_net(folder, net, info)
    return Evaluator(net, info)


def read_cached_net(folder: Path) -> tuple[dict[str, Tensor], dict] | None:
    """The weights and info.json a trained network was cached with in `folder`, the weights checked against
    info's sha256; None when nothing is cached there."""
    if not (folder / "info.json").is_file():
        return None
    info = json.loads((folder / "info.json").read_text())
    weights = folder / "model.safetensors"
    if hashlib.sha256(weights.read_bytes()).hexdigest() != info["sha256"]:
        raise AigcError(f"{weights} is damaged; delete {folder} to retrain the evaluator")
    return load_file(str(weights)), info


def write_cached_net(folder: Path, net: nn.Module, info: dict) -> None:
    """Cache net's weights as model.safetensors and `info`, with the weights' sha256 added, as info.json in
    `folder`, atomically."""
    with atomic_directory(folder) as tmp:
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp / "model.safetensors"))
        info["sha256"] = hashlib.sha256((tmp / "model.safetensors").read_bytes()).hexdigest()
        (tmp / "info.json").write_text(json.dumps(info, indent=2) + "\n")
