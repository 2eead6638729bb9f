"""Exponential moving average of a model's weights, used for sampling."""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["EMA"]


class EMA:
    """Keeps `model` = decay * model + (1 - decay) * live weights after every step; buffers are copied.

    Frozen parameters (a LoRA run's base model) are shared with the live model, not copied: they never change.
    A parameter frozen during training is copied from then on.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        frozen = {id(p): p for p in model.parameters() if not p.requires_grad}
        self.model = copy.deepcopy(model, memo=frozen).eval().requires_grad_(False)
        self.decay = decay

    @torch.no_grad()
    def update(self, live: nn.Module, step: int) -> None:
        """Average in the live weights after `step` completed steps."""
        # warm-up: early on the average would be dominated by the random initialisation
        decay = min(self.decay, (1 + step) / (10 + step))
        for averaged, current in zip(self.model.parameters(), live.parameters(), strict=True):
            if current.requires_grad:
                averaged.lerp_(current.detach(), 1.0 - decay)
            elif averaged is not current:  # frozen during training (latent diffusion's autoencoder): no longer
                averaged.copy_(current)  # changing, so the average of what follows is the weight itself
        for averaged, current in zip(self.model.buffers(), live.buffers(), strict=True):
            averaged.copy_(current)
