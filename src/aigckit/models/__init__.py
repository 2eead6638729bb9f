"""Model families; each registers itself in FAMILIES when imported."""

from . import diffusion, gan, lm, vae  # noqa: F401  each family registers itself
from .base import FAMILIES, Batch, Family, StepOutput, family_for_model

__all__ = ["FAMILIES", "Batch", "Family", "StepOutput", "family_for_model"]
