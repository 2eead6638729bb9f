"""GAN losses as functions of discriminator logits (the sigmoid lives inside softplus).

With D(x) = sigmoid(l(x)): -log D(x) = softplus(-l(x)) and -log(1 - D(x)) = softplus(l(x)).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .config import LOSSES

__all__ = ["discriminator_loss", "generator_loss", "gradient_penalty"]


def _unknown_loss(kind: str) -> ValueError:
    return ValueError(f"unknown GAN loss {kind!r}; known: {', '.join(LOSSES)}")


def discriminator_loss(kind: str, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """L_D for real and generated logits, averaged over the batch."""
    if kind == "non-saturating":
        # L_D = -E[log D(x)] - E[log(1 - D(G(z)))], Goodfellow et al. 2014
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    if kind == "hinge":
        # https://arxiv.org/abs/1705.02894 (geometric GAN), as used by SNGAN/BigGAN
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
    if kind == "wgan-gp":
        # critic maximises E[D(x)] - E[D(G(z))]; the penalty is added by the family
        return fake_logits.mean() - real_logits.mean()
    raise _unknown_loss(kind)


def generator_loss(kind: str, fake_logits: Tensor) -> Tensor:
    """L_G for the discriminator's logits on generated images."""
    if kind == "non-saturating":
        # L_G = -E[log D(G(z))]: strong gradients while D rejects the fakes
        return F.softplus(-fake_logits).mean()
    if kind in ("hinge", "wgan-gp"):
        return -fake_logits.mean()
    raise _unknown_loss(kind)


def gradient_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor, mix: Tensor) -> Tensor:
    """E[(||grad_x D(x_hat)||_2 - 1)^2] on the interpolates x_hat = mix * real + (1 - mix) * fake, with mix (B,)
    drawn uniformly on [0, 1], https://arxiv.org/abs/1704.00028."""
    eps = mix.to(real.dtype).view(-1, 1, 1, 1)
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
