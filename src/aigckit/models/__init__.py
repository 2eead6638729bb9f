"""Model families; each registers itself in the core's FAMILIES when imported."""

from . import clip, diffusion, gan, lm, style, vae  # noqa: F401  each family registers itself
