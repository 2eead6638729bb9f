"""Exponential moving average of a model's weights, used for sampling."""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["EMA"]


class EMA:
    """Keeps `model` = decay * model + (1 - decay) * live weights after every step; buffers are copied."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay

    @torch.no_grad()
    def update(self, live: nn.Module, step: int) -> None:
        """Average in the live weights after `step` completed steps."""
        # warm-up: early on the average would be dominated by the random initialisation
        decay = min(self.decay, (1 + step) / (10 + step))
        for averaged, current in zip(self.model.parameters(), live.parameters(), strict=True):
            averaged.lerp_(current.detach(), 1.0 - decay)
        for averaged, current in zip(self.model.buffers(), live.buffers(), strict=True):
            averaged.copy_(current)
