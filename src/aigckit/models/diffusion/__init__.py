"""Diffusion family: a UNet denoiser with DDPM, DDIM and DPM-Solver++ samplers."""

from .config import DiffusionConfig
from .family import DiffusionFamily, DiffusionModel

__all__ = ["DiffusionConfig", "DiffusionFamily", "DiffusionModel"]
