"""VAE family: the worked-example MLP VAE and a convolutional VAE."""

from .config import VAEConfig
from .family import VAE, VAEFamily

__all__ = ["VAE", "VAEConfig", "VAEFamily"]
