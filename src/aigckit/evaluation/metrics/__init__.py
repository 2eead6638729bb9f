"""Metrics as plain functions of tensors."""

from .classifier_score import classifier_score, conditional_accuracy
from .fid import FeatureStatistics, fid, frechet_distance
from .image_quality import psnr, ssim
from .kid import kid
from .memorisation import memorisation, nearest_neighbours
from .precision_recall import density_coverage, precision_recall

__all__ = ["FeatureStatistics", "classifier_score", "conditional_accuracy", "density_coverage", "fid",
           "frechet_distance", "kid", "memorisation", "nearest_neighbours", "precision_recall", "psnr", "ssim"]
