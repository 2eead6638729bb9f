"""The variational bound on -log p(x0) of a diffusion model with fixed variances, in nats and bits/dim.

Ho et al. 2020 (eq. 5, 13), with 0-indexed timesteps t = 0 .. T-1:
    L = KL(q(x_{T-1}|x0) || N(0, I))                                     prior term
      + sum_{t>=1} KL(q(x_{t-1}|x_t, x0) || p(x_{t-1}|x_t))            denoising terms, variance beta~_t
      - log p(x0 | x_{t=0})                                             discretised Gaussian decoder (256 bins)
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ...layers import randn
from .schedules import to_x0_and_eps

__all__ = ["variational_bound"]


def _normal_cdf(x: Tensor) -> Tensor:
    return 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


def _discretised_gaussian_log_likelihood(x: Tensor, mean: Tensor, log_std: Tensor) -> Tensor:
    """log P(x) for x on the 256-level grid of [-1, 1] under N(mean, std^2) integrated over x's bin."""
    inv_std = torch.exp(-log_std)
    cdf_plus = _normal_cdf((x + 1 / 255 - mean) * inv_std)
    cdf_minus = _normal_cdf((x - 1 / 255 - mean) * inv_std)
    log_plus = cdf_plus.clamp(min=1e-12).log()  # the lowest bin takes everything below it
    log_one_minus = (1 - cdf_minus).clamp(min=1e-12).log()  # the highest bin everything above
    log_mid = (cdf_plus - cdf_minus).clamp(min=1e-12).log()
    return torch.where(x < -0.999, log_plus, torch.where(x > 0.999, log_one_minus, log_mid))


@torch.no_grad()
def variational_bound(model, x0: Tensor, labels: Tensor | None = None, *, timesteps: int | None = None,
                      generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """Per-image bound on -log p(x0) in nats and bits/dim; x0: (B, C, H, W) in [-1, 1].

    timesteps=None sums all T-1 denoising terms; an integer m uses m evenly strided timesteps (a random
    offset) scaled by (T-1)/m, an unbiased estimate that costs m network evaluations instead of T.
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
        return to_x0_and_eps(model.config.prediction, output, x_t, a[t])[0]

    x = x0.double()
    dims = x[0].numel()
    # prior: KL(N(sqrt(a_T) x0, 1 - a_T) || N(0, 1)) per pixel
    mean_T, var_T = a[-1].sqrt() * x, 1 - a[-1]
    prior = 0.5 * (var_T + mean_T**2 - 1 - var_T.log()).flatten(1).sum(1)

    if timesteps is None:
        chosen = list(range(1, T))
    else:
        offset = int(torch.randint(0, T - 1, (1,), generator=generator))
        chosen = sorted({1 + (offset + round(i * (T - 1) / timesteps)) % (T - 1) for i in range(timesteps)})
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
    decoder = -_discretised_gaussian_log_likelihood(x, predicted_x0(x_first, 0), torch.tensor(log_std)).flatten(1).sum(1)

    nats = prior + denoising + decoder
    return {"nats": nats.float(), "bits_per_dim": (nats / (dims * math.log(2))).float()}
