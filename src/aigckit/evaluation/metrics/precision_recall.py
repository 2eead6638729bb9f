"""Manifold-based fidelity and diversity of generated features.

Precision / recall: https://arxiv.org/abs/1904.06991 (k-NN balls around each real / fake feature).
Density / coverage: https://arxiv.org/abs/2002.09797 (counts of real balls, more robust to outliers).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["precision_recall", "density_coverage"]


def _kth_neighbour_radius(x: Tensor, k: int) -> Tensor:
    """Distance from each row to its k-th nearest other row."""
    distances = torch.cdist(x, x)
    return distances.kthvalue(k + 1, dim=1).values  # +1: the row itself is at distance 0


def precision_recall(real: Tensor, fake: Tensor, k: int = 3) -> tuple[float, float]:
    """Share of fakes inside the real manifold (precision) and of reals inside the fake one (recall)."""
    real, fake = real.double().cpu(), fake.double().cpu()
    real_radius, fake_radius = _kth_neighbour_radius(real, k), _kth_neighbour_radius(fake, k)
    d = torch.cdist(fake, real)  # (n_fake, n_real)
    precision = (d <= real_radius[None, :]).any(dim=1).double().mean()
    recall = (d.T <= fake_radius[None, :]).any(dim=1).double().mean()
    return float(precision), float(recall)


def density_coverage(real: Tensor, fake: Tensor, k: int = 5) -> tuple[float, float]:
    """Density: mean number of real k-NN balls holding each fake, over k. Coverage: share of real balls hit."""
    real, fake = real.double().cpu(), fake.double().cpu()
    radius = _kth_neighbour_radius(real, k)
    inside = torch.cdist(fake, real) <= radius[None, :]  # (n_fake, n_real)
    density = inside.double().sum() / (k * fake.shape[0])
    coverage = inside.any(dim=0).double().mean()
    return float(density), float(coverage)
