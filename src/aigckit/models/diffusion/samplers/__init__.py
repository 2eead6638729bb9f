"""Diffusion samplers: one algorithm per file, each with set_timesteps(n), timesteps and step()."""

from .ddim import DDIMSampler
from .ddpm import DDPMSampler
from .dpm_solver import DPMSolverSampler

__all__ = ["DDPMSampler", "DDIMSampler", "DPMSolverSampler", "SAMPLERS"]

SAMPLERS = {"ddpm": DDPMSampler, "ddim": DDIMSampler, "dpm-solver++": DPMSolverSampler}
