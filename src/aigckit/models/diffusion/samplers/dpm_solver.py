"""DPM-Solver++(2M), https://arxiv.org/abs/2211.01095 (Algorithm 2): a second-order multistep ODE solver."""

from __future__ import annotations

import torch
from torch import Tensor

from ..schedules import check_prediction, timestep_index, to_x0_and_eps, trailing_timesteps

__all__ = ["DPMSolverSampler"]


class DPMSolverSampler:
    """Solves the probability-flow ODE in log-SNR time lambda = log(alpha / sigma) with x0 predictions.

    alpha_t = sqrt(alpha_bar_t), sigma_t = sqrt(1 - alpha_bar_t). The first step and the last (to sigma = 0)
    are first order; the others use the previous x0 prediction as well (the "midpoint" form).

    Being multistep, a step at timesteps[i] (i > 0) needs the x0 prediction of the step at timesteps[i - 1]:
    the sampler finds i from the t it is given and refuses a step whose predecessor was not the last one taken.
    """

    def __init__(self, alphas_cumprod: Tensor, *, prediction: str = "eps", clip_sample: bool = True) -> None:
        self.alphas_cumprod = alphas_cumprod
        self.prediction = check_prediction(prediction)
        # Clipping x0 to the data range keeps the first, very noisy steps from overshooting; DPM-Solver++
        # is a data-prediction solver precisely so that such constraints can be applied (paper, sec. 4).
        self.clip_sample = clip_sample
        self.set_timesteps(len(alphas_cumprod))  # every training step until set_timesteps(n) asks for fewer

    def set_timesteps(self, num_steps: int) -> None:
        """Use num_steps steps from T-1 down to 0 and forget earlier predictions."""
        self.timesteps = trailing_timesteps(len(self.alphas_cumprod), num_steps)
        a = self.alphas_cumprod[self.timesteps].double()
        # (alpha, sigma) at each timestep, then the end point alpha = 1, sigma = 0
        self.alpha = torch.cat([a.sqrt(), torch.ones(1, dtype=torch.float64)])
        self.sigma = torch.cat([(1 - a).sqrt(), torch.zeros(1, dtype=torch.float64)])
        self.lambdas = self.alpha.log() - self.sigma.log()  # +inf at the end point
        self.previous: tuple[int, Tensor] | None = None  # (index, x0 prediction) of the last step taken

    def step(self, model_output: Tensor, t: int, x_t: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Advance from timestep t (one of `timesteps`) to the next noise level; `generator` is unused (the ODE
        is deterministic). After the first step, each step must follow the one before it in `timesteps`."""
        i = timestep_index(self.timesteps, t)
        if i > 0 and (self.previous is None or self.previous[0] != i - 1):
            taken = "no step" if self.previous is None else f"the step at t={int(self.timesteps[self.previous[0]])}"
            raise ValueError(f"DPM-Solver++ is multistep: the step at t={t} needs the step at "
                             f"t={int(self.timesteps[i - 1])} just before it, but {taken} was taken last; "
                             f"step through `timesteps` in order (set_timesteps restarts)")
        x0, _ = to_x0_and_eps(self.prediction, model_output, x_t, self.alphas_cumprod[t])
        if self.clip_sample:
            x0 = x0.clamp(-1, 1)
        alpha_next, sigma_next, sigma_now = self.alpha[i + 1], self.sigma[i + 1], self.sigma[i]
        h = self.lambdas[i + 1] - self.lambdas[i]
        phi = torch.expm1(-h)  # e^{-h} - 1
        last = i + 1 == len(self.timesteps)
        if i == 0 or last:
            d = x0  # first order: exactly a DDIM step
        else:
            r = (self.lambdas[i] - self.lambdas[i - 1]) / h
            d = x0 + (x0 - self.previous[1]) / (2 * r)  # D0 + D1 / 2, with D1 = (x0 - x0_prev) / r
        x_next = (sigma_next / sigma_now).to(x_t.dtype) * x_t - (alpha_next * phi).to(x_t.dtype) * d
        self.previous = (i, x0)
        return x_next
