"""VAE hyper-parameters; saved as config.json beside the weights."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ...config import require

__all__ = ["VAEConfig", "PRESETS"]


@dataclass(frozen=True)
class VAEConfig:
    """An encoder q(z|x), a decoder p(x|z) and the ELBO they are trained on.

    image_size, channels and num_classes are filled from the dataset when left null.
    """

    name: Literal["mlp-vae", "conv-vae"] = "mlp-vae"
    image_size: int | None = None
    channels: int | None = None
    num_classes: int | None = None
    conditional: bool = False  # the label is given to both encoder and decoder (a CVAE)
    latent_dim: int = 2  # the worked example's 2-D latent, which can be plotted directly
    hidden_sizes: tuple[int, ...] = (128,)  # mlp-vae: encoder widths; the decoder reverses them
    base_channels: int = 32  # conv-vae: channels after the first downsampling, doubled once
    # p(x|z) per pixel: Bernoulli on grey levels in [0, 1] (no bits/dim), or a Gaussian with a learned scale,
    # discretised over the 256 levels of 8-bit pixels (a probability of the image: bits/dim); see likelihoods.py
    likelihood: Literal["bernoulli", "gaussian"] = "bernoulli"
    beta: float = 1.0  # weight of the KL term, https://openreview.net/forum?id=Sy2fzU9gl
    lr: float = 1e-3

    def __post_init__(self) -> None:
        require(self.latent_dim > 0, "latent_dim", "must be positive")
        require(len(self.hidden_sizes) > 0 and min(self.hidden_sizes) > 0, "hidden_sizes", "positive widths")
        require(self.base_channels > 0, "base_channels", "must be positive")
        require(self.beta >= 0, "beta", "must be >= 0")
        require(self.lr > 0, "lr", "must be positive")
        if self.image_size is not None and self.name == "conv-vae":
            require(self.image_size % 4 == 0, "image_size",
                    f"conv-vae halves the image twice, so it needs a multiple of 4, got {self.image_size}")
        if self.conditional and self.num_classes is not None:
            require(self.num_classes >= 2, "conditional",
                    "the dataset has no classes; set model.conditional=false or use labelled data")


PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"latent_dim": 2, "hidden_sizes": (32,), "base_channels": 8},
    "small": {"latent_dim": 8, "hidden_sizes": (256, 128), "base_channels": 32},
    "base": {},
}
