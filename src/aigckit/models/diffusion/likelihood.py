"""The variational bound on -log p(x0) of a diffusion model with fixed variances, in nats and bits/dim.

Ho et al. 2020 (eq. 5, 13), https://arxiv.org/abs/2006.11239, with 0-indexed timesteps t = 0 .. T-1:
    L = KL(q(x_{T-1}|x0) || N(0, I))                                     prior term (L_T)
      + sum_{t>=1} KL(q(x_{t-1}|x_t, x0) || p(x_{t-1}|x_t))            denoising terms (L_{t-1}), variance beta~_t
      - log p(x0 | x_{t=0})                                             decoder term (L_0)
The decoder term is Ho et al.'s discretised Gaussian: the density N(x0_hat, beta~_1) integrated over the bin
of width 2/255 around each of the 256 pixel levels of [-1, 1], the lowest and highest bins taking the tails
(their `discretized_gaussian_log_likelihood`). The images are snapped to those 256 levels first, so the bound
is on -log P of the 8-bit image, and bits/dim is that divided by C*H*W*ln 2. The x0 estimate is clipped to
[-1, 1], as the DDPM sampler and Ho et al.'s `calc_bpd_loop` do, so the bound is that of the sampler's model.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ...data.transforms import quantise_8bit
from ...layers import randn
from .schedules import to_x0_and_eps

__all__ = ["variational_bound", "discretised_gaussian_log_likelihood", "DEFAULT_TIMESTEPS"]

DEFAULT_TIMESTEPS = 100  # denoising terms evaluated when none is asked: all of them when T - 1 <= 100
PIXEL_MODEL = ("discretised Gaussian over the 256 levels of 8-bit pixels (Ho et al. 2020 L0: each level's bin of "
               "width 2/255 integrated, the end bins taking the tails), images snapped to those levels")


def _normal_cdf(x: Tensor) -> Tensor:
    return 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


def discretised_gaussian_log_likelihood(x: Tensor, mean: Tensor, log_std: Tensor) -> Tensor:
    """log P(x) per pixel for x on the 256-level grid of [-1, 1] under N(mean, std^2) integrated over x's bin
    [x - 1/255, x + 1/255]; the bin of -1 takes everything below it, the bin of +1 everything above."""
    inv_std = torch.exp(-log_std)
    cdf_plus = _normal_cdf((x + 1 / 255 - mean) * inv_std)
    cdf_minus = _normal_cdf((x - 1 / 255 - mean) * inv_std)
    log_plus = cdf_plus.clamp(min=1e-12).log()  # the lowest bin takes everything below it
    log_one_minus = (1 - cdf_minus).clamp(min=1e-12).log()  # the highest bin everything above
    log_mid = (cdf_plus - cdf_minus).clamp(min=1e-12).log()
    return torch.where(x < -0.999, log_plus, torch.where(x > 0.999, log_one_minus, log_mid))


def _strided_timesteps(T: int, timesteps: int | None, generator: torch.Generator | None) -> list[int]:
    """The denoising timesteps 1..T-1 to evaluate: all, or `timesteps` evenly strided from a random offset."""
    m = DEFAULT_TIMESTEPS if timesteps is None else timesteps
    if m >= T - 1:
        return list(range(1, T))
    offset = int(torch.randint(0, T - 1, (1,), generator=generator))
    return sorted({1 + (offset + round(i * (T - 1) / m)) % (T - 1) for i in range(m)})


@torch.no_grad()
def variational_bound(model, x0: Tensor, labels: Tensor | None = None, *, timesteps: int | None = None,
                      generator: torch.Generator | None = None) -> dict[str, Any]:
    """Per-image bound on -log P(x0) of the 8-bit image, x0: (B, C, H, W) in [-1, 1]; a self-describing result.

    timesteps: how many of the T-1 denoising terms to evaluate, evenly strided from a random offset and scaled
    by (T-1)/m, an unbiased estimate that costs m network evaluations instead of T; T-1 or more sums them all
    (exact in t); None means DEFAULT_TIMESTEPS.

    Returns "bound" and "pixel_model" (what was computed), "discretisation", "dims", and per image (B,):
    "nats", "bits_per_dim", and the terms "prior_nats", "denoising_nats", "decoder_nats".
    """
    a = model.alphas_cumprod.double()
    T, B = len(a), x0.shape[0]
    device = x0.device

    def noise() -> Tensor:
        return randn(x0.shape, generator, device)

    def posterior(x_start: Tensor, x_t: Tensor, t: int) -> tuple[Tensor, float]:
        alpha_t, beta_t = a[t] / a[t - 1], 1 - a[t] / a[t - 1]
        mean = (a[t - 1].sqrt() * beta_t / (1 - a[t])) * x_start + (alpha_t.sqrt() * (1 - a[t - 1]) / (1 - a[t])) * x_t
        return mean, float((1 - a[t - 1]) / (1 - a[t]) * beta_t)

    def predicted_x0(x_t: Tensor, t: int) -> Tensor:
        output = model.guided_output(x_t.float(), torch.full((B,), t, device=device), labels).double()
        return to_x0_and_eps(model.output_prediction, output, x_t, a[t])[0].clamp(-1, 1)

    x = quantise_8bit(x0.double())
    dims = x[0].numel()
    # prior: KL(N(sqrt(a_T) x0, 1 - a_T) || N(0, 1)) per pixel
    mean_T, var_T = a[-1].sqrt() * x, 1 - a[-1]
    prior = 0.5 * (var_T + mean_T**2 - 1 - var_T.log()).flatten(1).sum(1)

    chosen = _strided_timesteps(T, timesteps, generator)
    denoising = torch.zeros(B, dtype=torch.float64, device=device)
    for t in chosen:
        x_t = a[t].sqrt() * x + (1 - a[t]).sqrt() * noise()
        true_mean, variance = posterior(x, x_t, t)
        model_mean, _ = posterior(predicted_x0(x_t, t), x_t, t)
        denoising += ((true_mean - model_mean) ** 2).flatten(1).sum(1) / (2 * variance)  # equal-variance KL
    denoising *= (T - 1) / len(chosen)

    # decoder at t = 0: the model's x0 estimate with the first nonzero posterior std (beta~_1) as its width
    x_first = a[0].sqrt() * x + (1 - a[0]).sqrt() * noise()
    log_std = 0.5 * math.log(posterior(x, x, 1)[1])
    decoder = -discretised_gaussian_log_likelihood(x, predicted_x0(x_first, 0), torch.tensor(log_std))
    decoder = decoder.flatten(1).sum(1)

    nats = prior + denoising + decoder
    terms = (f"all {T - 1} denoising terms" if len(chosen) == T - 1 else
             f"{len(chosen)} of the {T - 1} denoising terms, evenly strided (unbiased estimate)")
    return {"bound": f"DDPM variational bound on -log p(x), fixed variances beta~ (Ho et al. 2020 eq. 5): {terms}",
            "pixel_model": PIXEL_MODEL, "discretisation": "8-bit", "dims": dims,
            "nats": nats.float(), "bits_per_dim": (nats / (dims * math.log(2))).float(),
            "prior_nats": prior.float(), "denoising_nats": denoising.float(), "decoder_nats": decoder.float()}
