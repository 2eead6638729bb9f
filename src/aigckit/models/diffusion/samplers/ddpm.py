"""DDPM ancestral sampling, https://arxiv.org/abs/2006.11239 (Algorithm 2), with any number of steps."""

from __future__ import annotations

import torch
from torch import Tensor

from ....layers import randn
from ..schedules import check_prediction, timestep_index, to_x0_and_eps, trailing_timesteps

__all__ = ["DDPMSampler"]


class DDPMSampler:
    """x_{t'} ~ q(x_{t'} | x_t, x0_hat): the true posterior with the predicted x0 and fixed variance beta~.

    With fewer steps than training, t' is the next timestep in the list and the step's beta is
    1 - alpha_bar_t / alpha_bar_t' (the posterior between those two noise levels).
    """

    def __init__(self, alphas_cumprod: Tensor, *, prediction: str = "eps", clip_sample: bool = True) -> None:
        self.alphas_cumprod = alphas_cumprod
        self.prediction = check_prediction(prediction)
        self.clip_sample = clip_sample
        self.timesteps = trailing_timesteps(len(alphas_cumprod), len(alphas_cumprod))

    def set_timesteps(self, num_steps: int) -> None:
        """Use num_steps steps from T-1 down to 0."""
        self.timesteps = trailing_timesteps(len(self.alphas_cumprod), num_steps)

    def previous_timestep(self, t: int) -> int:
        """The timestep after t in the list, or -1 after the last; a t not in the list raises ValueError."""
        index = timestep_index(self.timesteps, t)
        return int(self.timesteps[index + 1]) if index + 1 < len(self.timesteps) else -1

    def posterior(self, x0: Tensor, x_t: Tensor, t: int) -> tuple[Tensor, Tensor]:
        """Mean and variance of q(x_{t'} | x_t, x0) (Ho et al. eq. 6-7) between t and the previous timestep."""
        return self._posterior(x0, x_t, t, self.previous_timestep(t))

    def _posterior(self, x0: Tensor, x_t: Tensor, t: int, prev: int) -> tuple[Tensor, Tensor]:
        a_t = self.alphas_cumprod[t]
        a_prev = self.alphas_cumprod[prev] if prev >= 0 else torch.tensor(1.0)
        alpha_t = a_t / a_prev  # the effective alpha between the two noise levels (not 1 - beta: when
        beta_t = 1 - alpha_t  # alpha_t is tiny, as at the cosine schedule's end, that loses precision)
        mean = (a_prev.sqrt() * beta_t / (1 - a_t)) * x0 + (alpha_t.sqrt() * (1 - a_prev) / (1 - a_t)) * x_t
        variance = ((1 - a_prev) / (1 - a_t) * beta_t).clamp(min=1e-20)  # beta~_t
        return mean, variance

    def step(self, model_output: Tensor, t: int, x_t: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """One ancestral step from x_t at timestep t (one of `timesteps`); adds noise except at t = 0."""
        prev = self.previous_timestep(t)  # first: a t outside the schedule is refused before it indexes anything
        x0, _ = to_x0_and_eps(self.prediction, model_output, x_t, self.alphas_cumprod[t])
        if self.clip_sample:
            x0 = x0.clamp(-1, 1)
        mean, variance = self._posterior(x0, x_t, t, prev)
        if t == 0:
            return mean
        noise = randn(x_t.shape, generator, x_t.device, x_t.dtype)
        return mean + variance.sqrt() * noise
