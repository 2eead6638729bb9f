"""PSNR and SSIM restricted to a region (the hole of an inpainting mask)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["psnr", "ssim"]


def psnr(estimate: Tensor, truth: Tensor, region: Tensor | None = None) -> Tensor:
    """Peak signal-to-noise ratio in dB per image, images in [-1, 1] (peak 2), over `region` (B|1, 1, H, W)."""
    error = (estimate.float() - truth.float()) ** 2
    weight = torch.ones_like(error) if region is None else region.float().expand_as(error)
    mse = (error * weight).flatten(1).sum(1) / weight.flatten(1).sum(1).clamp(min=1)
    return 10 * torch.log10(4.0 / mse.clamp(min=1e-12))


def _gaussian_window(size: int, sigma: float) -> Tensor:
    x = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(estimate: Tensor, truth: Tensor, region: Tensor | None = None, window: int = 7,
         sigma: float = 1.5) -> Tensor:
    """Mean structural similarity per image (Wang et al. 2004) over `region`; images in [-1, 1].

    The SSIM map uses a Gaussian window (7x7 by default, for small images) with reflected borders.
    """
    x, y = (estimate.float() + 1) / 2, (truth.float() + 1) / 2  # to [0, 1], so L = 1
    C = x.shape[1]
    kernel = _gaussian_window(window, sigma).to(x.device).expand(C, 1, window, window)

    def blur(z: Tensor) -> Tensor:
        return F.conv2d(F.pad(z, [window // 2] * 4, mode="reflect"), kernel, groups=C)

    mu_x, mu_y = blur(x), blur(y)
    var_x, var_y = blur(x * x) - mu_x**2, blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    weight = torch.ones_like(ssim_map) if region is None else region.float().expand_as(ssim_map)
    return (ssim_map * weight).flatten(1).sum(1) / weight.flatten(1).sum(1).clamp(min=1)
