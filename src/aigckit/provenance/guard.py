"""The memorisation guard: withhold a generated image that is a near-copy of a training image.

It uses the distance and the rule of `aigckit eval`'s memorisation metric (evaluation/metrics/memorisation.py): an
image is a near-copy when its L2 distance to the nearest training image, in the model's [-1, 1] pixels, is below
1/3 of the median nearest-neighbour distance inside the training set. That median is read from the run's
eval/metrics.json when the evaluation measured it on the same data at the same size, and computed the same way
otherwise (once per guard: a second or two on MNIST's 60,000 images).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import threading
from pathlib import Path

from torch import Tensor

from ..errors import AigcError

__all__ = ["NEAR_COPY_RATIO", "MemorisationGuard", "guard_for"]


def _near_copy_ratio() -> float:
    from ..evaluation.metrics import memorisation

    return inspect.signature(memorisation).parameters["threshold"].default  # eval's own rule, not a copy of it


NEAR_COPY_RATIO = _near_copy_ratio()


def _run_dir(path: Path) -> Path:
    """The run directory of a run or checkpoint directory: the nearest folder up holding config.yaml."""
    for folder in (path, *path.parents[:2]):
        if (folder / "config.yaml").is_file():
            return folder
    raise AigcError(f"no config.yaml in {path} or the two folders above it; the memorisation guard needs the run "
                    f"directory (it names the training data); give the run, or drop --guard")


class MemorisationGuard:
    """Flags images closer to a training image than `ratio` × the typical train-to-train neighbour distance."""

    def __init__(self, train: Tensor, typical_distance: float, *, ratio: float = NEAR_COPY_RATIO,
                 source: str = "") -> None:
        self.train = train  # (N, C, H, W) in [-1, 1]
        self.typical_distance = typical_distance
        self.ratio = ratio
        self.source = source  # where the typical distance came from: eval/metrics.json or computed

    @property
    def threshold(self) -> float:
        """The distance below which an image is a near-copy."""
        return self.ratio * self.typical_distance

    @classmethod
    def from_run(cls, run_or_checkpoint: str | Path, image_size: int) -> MemorisationGuard:
        """The guard of a run: its training split at the model's size, the threshold as `aigckit eval` sets it."""
        from ..data import load_dataset
        from ..evaluation.evaluate import run_config
        from ..evaluation.metrics import memorisation

        run_dir = _run_dir(Path(run_or_checkpoint))
        data = dataclasses.replace(run_config(run_dir).data, image_size=image_size)  # as evaluate_run does
        train = load_dataset(data, "train").images
        typical = _evaluated_distance(run_dir, data.name, image_size)
        if typical is not None:
            return cls(train, typical, source=str(run_dir / "eval" / "metrics.json"))
        typical = memorisation(train[:1], train)["typical_train_nn_distance"]  # the same estimate as eval's
        return cls(train, typical, source="computed from the training split")

    def near_copies(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """For (B, C, H, W) images in [-1, 1]: (B,) bools, True for a near-copy, and the (B,) nearest distances."""
        from ..evaluation.metrics import nearest_neighbours

        if images.shape[1:] != self.train.shape[1:]:
            raise AigcError(f"the guard compares images of shape {tuple(self.train.shape[1:])} but got "
                            f"{tuple(images.shape[1:])}")
        distance, _ = nearest_neighbours(images, self.train)
        return distance < self.threshold, distance


def _evaluated_distance(run_dir: Path, dataset: str, image_size: int) -> float | None:
    """The typical training distance eval/metrics.json recorded for this data and size, or None."""
    path = run_dir / "eval" / "metrics.json"
    if not path.is_file():
        return None
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
        value = metrics["memorisation"]["typical_train_nn_distance"]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # an old or damaged report: computed afresh instead
    if metrics.get("dataset") != dataset or metrics.get("image_size") != image_size or not isinstance(value, float):
        return None
    return value


_GUARDS: dict[tuple[str, int], MemorisationGuard] = {}
_LOCK = threading.Lock()


def guard_for(run_or_checkpoint: str | Path, image_size: int) -> MemorisationGuard:
    """The guard of a run, built once per process (the server asks for it on every guarded request)."""
    key = (str(Path(run_or_checkpoint).resolve()), image_size)
    with _LOCK:
        if key not in _GUARDS:
            _GUARDS[key] = MemorisationGuard.from_run(run_or_checkpoint, image_size)
        return _GUARDS[key]
