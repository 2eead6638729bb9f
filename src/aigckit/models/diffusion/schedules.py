"""Noise schedules and the algebra between what a network predicts and x0 / eps.

Forward process (Ho et al. 2020, https://arxiv.org/abs/2006.11239):
    x_t = sqrt(alpha_bar_t) * x0 + sqrt(1 - alpha_bar_t) * eps,   eps ~ N(0, I),   t = 0 .. T-1
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch
from torch import Tensor

from ...errors import AigcError

__all__ = ["SCHEDULES", "PREDICTIONS", "linear_betas", "cosine_betas", "alphas_cumprod", "to_x0_and_eps", "min_snr_weights",
           "training_target", "edm_scalings", "edm_target", "lognormal_timesteps", "trailing_timesteps",
           "check_prediction", "timestep_index"]

PREDICTIONS = ("eps", "v", "x0")  # what the network outputs: the noise, v = a * eps - s * x0, or x0 itself


def linear_betas(num_steps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> Tensor:
    """beta_t evenly spaced from beta_start to beta_end (the DDPM paper's schedule), float32 (T,)."""
    return torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float32)


def cosine_betas(num_steps: int, s: float = 0.008, max_beta: float = 0.999) -> Tensor:
    """betas from alpha_bar(t) = cos^2(((t/T + s) / (1 + s)) * pi/2), https://arxiv.org/abs/2102.09672 (eq. 17)."""

    def alpha_bar(u: float) -> float:
        return math.cos((u + s) / (1 + s) * math.pi / 2) ** 2

    betas = [min(1 - alpha_bar((i + 1) / num_steps) / alpha_bar(i / num_steps), max_beta) for i in range(num_steps)]
    return torch.tensor(betas, dtype=torch.float32)


SCHEDULES = {"linear": linear_betas, "cosine": cosine_betas}


def alphas_cumprod(schedule: str, num_steps: int) -> Tensor:
    """alpha_bar_t = prod_{s<=t} (1 - beta_s) for the named schedule ('linear' or 'cosine'), float32 (T,)."""
    if schedule not in SCHEDULES:
        raise AigcError(f"unknown noise schedule {schedule!r}; known: {', '.join(SCHEDULES)}")
    return torch.cumprod(1.0 - SCHEDULES[schedule](num_steps), dim=0)


def _unknown_prediction(prediction: str) -> AigcError:
    return AigcError(f"unknown prediction type {prediction!r}; known: {', '.join(PREDICTIONS)}")


def check_prediction(prediction: str) -> str:
    """Return `prediction` if it is a known prediction type, else raise AigcError naming the known ones."""
    if prediction not in PREDICTIONS:
        raise _unknown_prediction(prediction)
    return prediction


def to_x0_and_eps(prediction: str, output: Tensor, x_t: Tensor, alpha_bar_t: Tensor | float) -> tuple[Tensor, Tensor]:
    """Turn a network output of type `prediction` ('eps', 'v' or 'x0') into (x0, eps) at x_t."""
    a, s = alpha_bar_t**0.5, (1 - alpha_bar_t) ** 0.5
    if prediction == "eps":
        return (x_t - s * output) / a, output
    if prediction == "x0":
        return output, (x_t - a * output) / s
    if prediction == "v":  # v = a * eps - s * x0, https://arxiv.org/abs/2202.00512
        return a * x_t - s * output, a * output + s * x_t
    raise _unknown_prediction(prediction)


def training_target(prediction: str, x0: Tensor, eps: Tensor, alpha_bar_t: Tensor) -> Tensor:
    """What the network should output for (x0, eps) at noise level alpha_bar_t (broadcastable)."""
    if prediction == "eps":
        return eps
    if prediction == "x0":
        return x0
    if prediction == "v":
        return alpha_bar_t.sqrt() * eps - (1 - alpha_bar_t).sqrt() * x0
    raise _unknown_prediction(prediction)


def edm_scalings(alpha_bar_t: Tensor, sigma_data: float) -> tuple[Tensor, Tensor, Tensor]:
    """EDM preconditioning (Karras et al. 2022, https://arxiv.org/abs/2206.00364, Table 1) in VP terms: (c_in,
    c_skip, c_out) with network input c_in * x_t and x0 = c_skip * x_t + c_out * F(c_in * x_t).

    EDM writes x = x0 + sigma * eps with sigma^2 = (1 - alpha_bar) / alpha_bar; our x_t is that x times
    sqrt(alpha_bar), so each of its coefficients is divided by sqrt(alpha_bar) here. The network's input and its
    target both have unit variance at every noise level; with sigma_data = 1 this is exactly v-prediction (F = -v).
    """
    a, s = alpha_bar_t.sqrt(), (1 - alpha_bar_t).sqrt()
    d = (s**2 + (a * sigma_data) ** 2).sqrt()
    return 1 / d, a * sigma_data**2 / d**2, s * sigma_data / d


def edm_target(x0: Tensor, eps: Tensor, alpha_bar_t: Tensor, sigma_data: float) -> Tensor:
    """The F that makes c_skip * x_t + c_out * F equal x0, written without dividing by c_out (which is 0 at t=0)."""
    a, s = alpha_bar_t.sqrt(), (1 - alpha_bar_t).sqrt()
    d = (s**2 + (a * sigma_data) ** 2).sqrt()
    return (s * x0 - a * sigma_data**2 * eps) / (sigma_data * d)


def min_snr_weights(prediction: str, alpha_bar_t: Tensor, gamma: float, sigma_data: float = 0.5) -> Tensor:
    """Min-SNR-gamma loss weights (Hang et al. 2023, https://arxiv.org/abs/2303.09556) for the plain MSE on the
    network's output: the weighted loss is min(SNR, gamma) * ||x0 - x0_hat||^2 whatever the network predicts,
    with SNR = alpha_bar / (1 - alpha_bar): high-SNR (nearly clean) steps no longer dominate the gradient."""
    snr = alpha_bar_t / (1 - alpha_bar_t)
    clipped = snr.clamp(max=gamma)
    if prediction == "eps":  # ||eps - eps_hat||^2 = SNR ||x0 - x0_hat||^2
        return clipped / snr
    if prediction == "v":  # ||v - v_hat||^2 = (SNR + 1) ||x0 - x0_hat||^2
        return clipped / (snr + 1)
    if prediction == "x0":
        return clipped
    if prediction == "edm":  # ||F - F_hat||^2 = ||x0 - x0_hat||^2 / c_out^2
        return clipped * edm_scalings(alpha_bar_t, sigma_data)[2] ** 2
    raise _unknown_prediction(prediction)


def lognormal_timesteps(normal_draws: Tensor, alphas_cumprod: Tensor, mean: float, std: float) -> Tensor:
    """Timesteps whose noise level sigma = sqrt((1 - alpha_bar) / alpha_bar) is nearest (in log sigma) to
    exp(mean + std * draw): EDM's log-normal training distribution on a discrete schedule."""
    log_sigmas = 0.5 * torch.log((1 - alphas_cumprod) / alphas_cumprod)  # increasing in t
    wanted = mean + std * normal_draws.to(log_sigmas)
    above = torch.searchsorted(log_sigmas, wanted.contiguous()).clamp(1, len(log_sigmas) - 1)
    nearer_below = (wanted - log_sigmas[above - 1]) < (log_sigmas[above] - wanted)
    return torch.where(nearer_below, above - 1, above)


def trailing_timesteps(num_train_steps: int, num_steps: int) -> Tensor:
    """num_steps timesteps from T-1 downwards, evenly spaced and always starting at the noisiest step.

    'trailing' spacing of https://arxiv.org/abs/2305.08891 (Table 2), so every step count starts from pure noise.
    """
    whole = isinstance(num_steps, numbers.Integral) and not isinstance(num_steps, bool)
    if not whole or not 1 <= num_steps <= num_train_steps:
        raise AigcError(f"steps must be a whole number in 1..{num_train_steps} (the model's num_train_steps), "
                        f"got {num_steps!r}")
    num_steps = int(num_steps)
    ratio = num_train_steps / num_steps
    return torch.from_numpy(np.round(np.arange(num_train_steps, 0, -ratio)).astype(np.int64) - 1)


def timestep_index(timesteps: Tensor, t: int) -> int:
    """Position of timestep t in a sampler's `timesteps`; a t that is not there raises ValueError.

    Samplers derive where they are from the t they are given, never from a hidden counter, so a step called
    with a timestep that is not in the schedule is refused instead of silently taking another step.
    """
    hits = (timesteps == t).nonzero()
    if hits.numel() == 0:
        shown = ", ".join(str(v) for v in timesteps[:5].tolist()) + (", ..." if len(timesteps) > 5 else "")
        raise ValueError(f"timestep {t} is not in this sampler's schedule ({len(timesteps)} steps: {shown}); "
                         f"step with the values of `timesteps` after set_timesteps")
    return int(hits[0, 0])
