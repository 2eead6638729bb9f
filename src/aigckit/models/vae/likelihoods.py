"""The VAE's pixel models p(x|z): what each one is a probability of, and how to evaluate it per pixel.

- "gaussian": a Gaussian with the decoder's mean and one learned scale, discretised over the 256 levels of
  8-bit pixels: level v in 0..255 gets the Gaussian's mass on [(v - 0.5)/255, (v + 0.5)/255] (pixels as
  [0, 1]), level 0 everything below and level 255 everything above, so the 256 probabilities sum to 1
  (as Ho et al. 2020's decoder, and the discretised logistic of https://arxiv.org/abs/1701.05517).
  The images are snapped to those levels first; -log P is then in bits per dimension of the 8-bit image.
- "bernoulli": binary cross-entropy of the decoder's logits against grey levels in [0, 1]. For grey pixels
  this is not a probability of anything that was observed (only of black/white images), so it gives no
  bits/dim; its nats are still a training objective and a relative score between Bernoulli VAEs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.special import log_ndtr

from ...data.transforms import quantise_8bit

__all__ = ["PIXEL_MODELS", "bernoulli_log_prob", "discretised_gaussian_log_prob", "normal_mass_log"]

# likelihood name -> (what the pixel model is, its discretisation or None when it is not a probability of pixels)
PIXEL_MODELS: dict[str, tuple[str, str | None]] = {
    "gaussian": ("discretised Gaussian over the 256 levels of 8-bit pixels (each level's bin of width 1/255 "
                 "integrated, the end levels taking the tails), images snapped to those levels", "8-bit"),
    "bernoulli": ("Bernoulli cross-entropy against grey levels in [0, 1]: not a probability of 8-bit (or any "
                  "grey) pixels, so no bits/dim; nats comparable only between Bernoulli VAEs on the same data", None),
}


def normal_mass_log(lower: Tensor, upper: Tensor) -> Tensor:
    """log(Phi(upper) - Phi(lower)) for lower < upper (standardised), accurate far out in either tail."""
    mirror = lower > 0  # in the upper tail, Phi(u) - Phi(l) = Phi(-l) - Phi(-u) keeps the digits
    low, high = torch.where(mirror, -upper, lower), torch.where(mirror, -lower, upper)
    log_high = log_ndtr(high)
    return log_high + torch.log((-torch.expm1(log_ndtr(low) - log_high)).clamp(min=1e-30))


def discretised_gaussian_log_prob(x: Tensor, mean: Tensor, log_sigma: Tensor) -> Tensor:
    """log P(x) per pixel, x: images in [-1, 1] (snapped to 8-bit levels); mean and sigma on the [0, 1] scale."""
    levels = torch.round((quantise_8bit(x.float()) + 1) * 127.5)  # 0..255
    inv_sigma = torch.exp(-log_sigma.float())
    mean = mean.float()
    lower = ((levels - 0.5) / 255 - mean) * inv_sigma
    upper = ((levels + 0.5) / 255 - mean) * inv_sigma
    # every branch is finite everywhere, so torch.where passes clean gradients
    return torch.where(levels == 0, log_ndtr(upper),
                       torch.where(levels == 255, log_ndtr(-lower), normal_mass_log(lower, upper)))


def bernoulli_log_prob(x: Tensor, logits: Tensor) -> Tensor:
    """-BCE(logits, grey level) per pixel, x in [-1, 1] mapped to [0, 1] (not a probability of grey pixels)."""
    return -F.binary_cross_entropy_with_logits(logits.float(), (x.float() + 1) / 2, reduction="none")
