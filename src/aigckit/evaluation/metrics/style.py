"""Scores of a stylised image that do not grade a method with the network it optimised against: style on an
independent feature bank (random filters of another seed, or VGG-19 when the method used random ones), content
by SSIM and the correlation of edge maps with the content image, and a Fréchet distance between the output's and
the style image's local-patch features (ArtFID's idea, on the named bank instead of Inception)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from ...style.features import FeatureNetwork, RandomMultiScale
from ...style.losses import gram, style_loss
from .fid import FeatureStatistics, fid
from .image_quality import ssim

__all__ = ["style_scores", "edge_correlation", "SCORING_SEED"]

SCORING_SEED = 1  # stylize's random features use seed 0: the scores use other filters
# the layer whose positions are the local patches of the Fréchet distance, per feature network
PATCH_LAYER = {"VGG19Features": "relu3_1", "RandomMultiScale": "scale4"}


def _rgb(image: Image.Image, size: tuple[int, int]) -> Tensor:
    """An image as (1, 3, H, W) in [0, 1] at `size`."""
    pixels = np.asarray(image.convert("RGB").resize(size, Image.Resampling.LANCZOS), dtype=np.float32) / 255.0
    return torch.from_numpy(pixels).permute(2, 0, 1)[None].contiguous()


def _luma(x: Tensor) -> Tensor:
    """ITU-R 601 luminance (1, 1, H, W) of RGB in [0, 1]."""
    return (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)


def edge_correlation(a: Tensor, b: Tensor) -> float:
    """Pearson correlation of the Sobel gradient magnitudes of two grey images (1, 1, H, W)."""
    kx = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]]).view(1, 1, 3, 3)

    def edges(x: Tensor) -> Tensor:
        x = F.pad(x.double(), (1, 1, 1, 1), mode="reflect")
        return torch.hypot(F.conv2d(x, kx.double()), F.conv2d(x, kx.double().transpose(2, 3))).flatten()

    ea, eb = edges(a), edges(b)
    ea, eb = ea - ea.mean(), eb - eb.mean()
    return float((ea @ eb) / (ea.norm() * eb.norm()).clamp_min(1e-12))


def _patch_statistics(features: Tensor) -> FeatureStatistics:
    """Every position of (1, C, H, W) features as one C-dimensional sample."""
    return FeatureStatistics(features.shape[1]).update(features[0].flatten(1).T.float())


@torch.no_grad()
def style_scores(output: Image.Image, content: Image.Image, style: Image.Image,
                 features: FeatureNetwork | None = None) -> dict[str, Any]:
    """Style distance (relative Gram error over the bank's style layers), patch Fréchet distance to the style,
    SSIM and edge correlation with the content (both at the output's size, on luminance); `features`: the bank
    (default: random filters of SCORING_SEED)."""
    bank = features if features is not None else RandomMultiScale(SCORING_SEED)
    bank = bank.eval().requires_grad_(False)
    out, con, sty = (_rgb(image, output.size) for image in (output, content, style))
    patch_layer = PATCH_LAYER[type(bank).__name__]
    layers = tuple(dict.fromkeys((*bank.style_layers, patch_layer)))
    out_features, style_features = bank(out, layers), bank(sty, layers)
    targets = {name: gram(style_features[name]) for name in bank.style_layers}
    return {"style_distance": float(style_loss(out_features, targets)),
            "patch_fd": fid(_patch_statistics(style_features[patch_layer]),
                            _patch_statistics(out_features[patch_layer])),
            "content_ssim": float(ssim(_luma(out) * 2 - 1, _luma(con) * 2 - 1)[0]),
            "edge_correlation": edge_correlation(_luma(out), _luma(con)),
            "scored_with": f"{bank.description}; patches: {patch_layer}"}
