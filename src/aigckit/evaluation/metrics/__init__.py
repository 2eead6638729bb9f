"""Metrics as plain functions of tensors."""

from .image_quality import psnr, ssim

__all__ = ["psnr", "ssim"]
