"""Does the model copy its training set? Nearest training neighbours of generated samples."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["nearest_neighbours", "memorisation"]


def nearest_neighbours(queries: Tensor, references: Tensor, *, exclude: Tensor | None = None,
                       chunk: int = 256) -> tuple[Tensor, Tensor]:
    """Distance to, and index of, each query's nearest reference (L2 on flattened tensors).

    exclude: for each query, the index of a reference to skip (the query itself when it is one of them).
    """
    q, r = queries.flatten(1).float().cpu(), references.flatten(1).float().cpu()
    distances, indices = [], []
    for start in range(0, q.shape[0], chunk):
        d = torch.cdist(q[start:start + chunk], r)
        if exclude is not None:
            rows = torch.arange(d.shape[0])
            d[rows, exclude[start:start + chunk]] = float("inf")
        best = d.min(dim=1)
        distances.append(best.values)
        indices.append(best.indices)
    return torch.cat(distances), torch.cat(indices)


def memorisation(samples: Tensor, train: Tensor, *, threshold: float = 1 / 3, reference_size: int = 1000) -> dict:
    """Flag samples much closer to a training image than training images are to each other.

    A sample is a near-copy when its nearest-training distance is below `threshold` times the median
    nearest-neighbour distance inside the training set (estimated from `reference_size` random training
    images against all the others). Returns the ratios, flags, and the pairs.
    """
    sample_distance, nearest = nearest_neighbours(samples, train)
    picked = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:reference_size]
    train_distance, _ = nearest_neighbours(train[picked], train, exclude=picked)
    typical = float(train_distance.median())
    ratio = sample_distance / typical
    flagged = ratio < threshold
    return {"typical_train_nn_distance": typical, "ratio": ratio, "nearest_index": nearest,
            "flagged": flagged, "near_copy_fraction": float(flagged.double().mean())}
