"""Staggered sampling of a clip's frames (Diffusion Forcing's pyramid schedule, https://arxiv.org/abs/2407.01392):
frame k starts its denoising `lag` sampler steps after frame k - 1, so that each frame is denoised beside frames
before it that are already cleaner, and a model trained with frames at levels of their own
(DiffusionConfig.independent_frame_noise) can carry their content on. Every step is a DDIM step (eta 0) of the
frames whose turn it is; a frame that has finished stays clean and is read at t = 0, as a given first frame is.
With lag 0 every frame moves at once: plain DDIM.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .ddim import estimates

__all__ = ["staggered_indices", "ddim_move"]


def staggered_indices(steps: int, frames: int, lag: int, *, first_given: bool = False) -> Tensor:
    """(iterations + 1, frames): where in the sampler's list of `steps` timesteps each frame stands before each
    iteration (and after the last); index `steps` means clean. Frame k waits lag * k iterations (lag * (k - 1),
    and frame 0 clean throughout, when the first frame is given)."""
    order = torch.arange(frames) - int(first_given)
    offsets = lag * order.clamp(min=0)
    iterations = steps + int(offsets.max())
    index = (torch.arange(iterations + 1)[:, None] - offsets).clamp(0, steps)
    if first_given:
        index[:, 0] = steps
    return index


def ddim_move(prediction: str, output: Tensor, x_t: Tensor, a_t: Tensor, a_next: Tensor, *,
              clip_sample: bool) -> Tensor:
    """A deterministic DDIM step from alpha_bar a_t to a_next, both broadcastable to x_t (one per frame)."""
    x0, eps = estimates(prediction, output, x_t, a_t, clip_sample=clip_sample)
    return a_next.sqrt() * x0 + (1 - a_next).sqrt() * eps
