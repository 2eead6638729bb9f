"""Kernel Inception Distance, https://arxiv.org/abs/1801.01401: unbiased MMD^2 with a cubic polynomial kernel."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["kid"]


def _mmd2_unbiased(x: Tensor, y: Tensor) -> Tensor:
    d = x.shape[1]
    k = lambda a, b: (a @ b.T / d + 1) ** 3  # noqa: E731  k(a, b) = (a.b / d + 1)^3
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    m, n = x.shape[0], y.shape[0]
    return ((kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1)) + (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
            - 2 * kxy.mean())


def kid(real: Tensor, fake: Tensor, *, subsets: int = 50, subset_size: int = 1000,
        generator: torch.Generator | None = None) -> tuple[float, float]:
    """Mean and standard deviation of the unbiased MMD^2 over random subsets of both feature sets."""
    real, fake = real.double().cpu(), fake.double().cpu()
    size = min(subset_size, real.shape[0], fake.shape[0])
    g = generator or torch.Generator().manual_seed(0)
    values = torch.stack([
        _mmd2_unbiased(real[torch.randperm(real.shape[0], generator=g)[:size]],
                       fake[torch.randperm(fake.shape[0], generator=g)[:size]])
        for _ in range(subsets)
    ])
    return float(values.mean()), float(values.std())
