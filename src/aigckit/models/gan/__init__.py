"""GAN family: MLP GAN and DCGAN, unconditional or class-conditional."""

from .config import GANConfig
from .family import GAN, GANFamily

__all__ = ["GAN", "GANConfig", "GANFamily"]
