"""aigckit: train, sample, evaluate and serve generative models (GANs, VAEs, diffusion, language models)."""

from __future__ import annotations

__version__ = "0.1.0"

from . import models  # noqa: E402,F401  every family registers itself in aigckit.family.FAMILIES
from .config import RunConfig, load_config  # noqa: E402
from .errors import AigcError, CheckpointError, ConfigError, DataError  # noqa: E402
from .pipelines.image import ImagePipeline, load  # noqa: E402
from .training.trainer import Trainer, train  # noqa: E402

__all__ = [
    "__version__",
    "AigcError",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "ImagePipeline",
    "RunConfig",
    "Trainer",
    "load",
    "load_config",
    "train",
]
