"""Fréchet distance between Gaussians fitted to features, https://arxiv.org/abs/1706.08500.

FID = ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^{1/2}). Statistics accumulate as float64 sums of x
and x x^T, so the result does not depend on how the features were batched.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import linalg
from torch import Tensor

__all__ = ["FeatureStatistics", "frechet_distance", "fid"]


class FeatureStatistics:
    """Running mean and covariance of feature vectors, in float64."""

    def __init__(self, dim: int) -> None:
        self.n = 0
        self.sum = torch.zeros(dim, dtype=torch.float64)
        self.outer = torch.zeros(dim, dim, dtype=torch.float64)

    def update(self, features: Tensor) -> FeatureStatistics:
        """Add a batch of features (B, dim)."""
        x = features.detach().cpu().double()
        self.n += x.shape[0]
        self.sum += x.sum(0)
        self.outer += x.T @ x
        return self

    @property
    def mean(self) -> np.ndarray:
        """Mean vector (dim,)."""
        return (self.sum / self.n).numpy()

    @property
    def covariance(self) -> np.ndarray:
        """Unbiased covariance (dim, dim), as numpy.cov computes it."""
        mean = self.sum / self.n
        return ((self.outer - self.n * torch.outer(mean, mean)) / (self.n - 1)).numpy()


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """The Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2)."""
    diff = mu1 - mu2
    covmean, _ = linalg.sqrtm(sigma1 @ sigma2, disp=False)
    if not np.isfinite(covmean).all():  # singular product: nudge both diagonals, as pytorch-fid does
        offset = np.eye(len(mu1)) * 1e-6
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    covmean = covmean.real  # numerical noise can leave tiny imaginary parts
    return float(max(0.0, diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)))


def fid(real: FeatureStatistics, fake: FeatureStatistics) -> float:
    """FID between two sets of accumulated feature statistics."""
    return frechet_distance(real.mean, real.covariance, fake.mean, fake.covariance)
