"""RePaint, https://arxiv.org/abs/2201.09865: inpainting with an unconditionally trained diffusion model.

At every noise level the known region is replaced by the image noised to that level, and the unknown
region comes from the reverse step. Every `jump_length` steps the sample is pushed back up `jump_length`
levels with fresh forward noise and denoised again (`resamplings` times in all), which lets the
generated region agree with the known one.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ...errors import AigcError
from ...layers import randn
from .samplers import DDPMSampler

__all__ = ["repaint"]


@torch.no_grad()
def repaint(model, image: Tensor, known: Tensor, *, steps: int = 50, jump_length: int = 5, resamplings: int = 5,
            labels: Tensor | None = None, guidance: float = 1.0,
            generator: torch.Generator | None = None) -> Tensor:
    """Fill the unknown pixels of `image` (B, C, H, W) in [-1, 1]; known: (B, 1, H, W), 1 where kept."""
    sampler = DDPMSampler(model.alphas_cumprod.cpu(), prediction=model.output_prediction)
    sampler.set_timesteps(steps)
    if jump_length < 1 or resamplings < 1:
        raise AigcError(f"jump_length and resamplings must be at least 1, got {jump_length} and {resamplings}")
    if resamplings > 1 and jump_length >= steps:
        raise AigcError(f"jump_length ({jump_length}) must be below steps ({steps}) for any resampling to happen; "
                        f"lower jump_length, raise steps, or set resamplings to 1")
    ts = sampler.timesteps.tolist()
    a = model.alphas_cumprod.cpu()
    known = known.to(image.dtype)
    jumps_left = {i: resamplings - 1 for i in range(jump_length, len(ts), jump_length)}

    def noised_known(level: int) -> Tensor:  # q(x_t | x0) for the known pixels; level -1 is x0 itself
        if level < 0:
            return image
        return a[level].sqrt() * image + (1 - a[level]).sqrt() * randn(image.shape, generator, image.device)

    x = randn(image.shape, generator, image.device)
    i = 0
    while i < len(ts):
        t = ts[i]
        x = known * noised_known(t) + (1 - known) * x
        output = model.guided_output(x, torch.full((x.shape[0],), t, device=x.device), labels, guidance)
        x = sampler.step(output.float(), t, x, generator=generator)
        i += 1
        if jumps_left.get(i, 0) > 0:
            jumps_left[i] -= 1
            # jump back up: q(x_high | x_low) = N(sqrt(a_high / a_low) x_low, (1 - a_high / a_low) I)
            low, high = ts[i], ts[i - jump_length]
            ratio = a[high] / a[low]
            x = known * noised_known(low) + (1 - known) * x
            x = ratio.sqrt() * x + (1 - ratio).sqrt() * randn(x.shape, generator, x.device)
            i -= jump_length
    return (known * image + (1 - known) * x).clamp(-1, 1)
