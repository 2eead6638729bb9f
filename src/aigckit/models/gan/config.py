"""GAN hyper-parameters; saved as config.json beside the weights."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ...config import require

__all__ = ["GANConfig", "PRESETS", "LOSSES"]

LOSSES = ("non-saturating", "hinge", "wgan-gp")


@dataclass(frozen=True)
class GANConfig:
    """A generator/discriminator pair, its losses and its optimizers.

    image_size, channels and num_classes are filled from the dataset when left null.
    """

    name: Literal["mlp-gan", "dcgan"] = "dcgan"
    image_size: int | None = None
    channels: int | None = None
    num_classes: int | None = None
    conditional: bool = False  # label embedding in G, projection discriminator
    z_dim: int = 100
    hidden_sizes: tuple[int, ...] = (128, 256, 512)  # mlp-gan generator widths; the discriminator reverses them
    base_channels: int = 64  # dcgan: channels at the finest resolution; doubled at each coarser level
    loss: Literal["non-saturating", "hinge", "wgan-gp"] = "non-saturating"
    gp_weight: float = 10.0  # lambda of WGAN-GP, https://arxiv.org/abs/1704.00028
    spectral_norm: bool = False  # on every discriminator layer, https://arxiv.org/abs/1802.05957
    discriminator_norm: Literal["batch", "none"] = "batch"  # dcgan only
    d_steps: int = 1  # discriminator updates per generator update
    # AC-GAN's auxiliary classifier (Odena et al. 2017, https://arxiv.org/abs/1610.09585) beside the projection:
    # D also names the class of real images, and G is rewarded when D names the asked-for class of its images.
    classifier_weight: float = 0.0
    lr_g: float = 1e-4
    lr_d: float = 2e-4
    betas: tuple[float, ...] = (0.5, 0.999)

    def __post_init__(self) -> None:
        require(self.name in ("mlp-gan", "dcgan"), "name", f"unknown GAN {self.name!r}; known: mlp-gan, dcgan")
        require(self.loss in LOSSES, "loss", f"unknown GAN loss {self.loss!r}; known: {', '.join(LOSSES)}")
        require(self.discriminator_norm in ("batch", "none"), "discriminator_norm",
                f"unknown normalisation {self.discriminator_norm!r}; known: batch, none")
        require(self.z_dim > 0, "z_dim", "must be positive")
        require(self.d_steps > 0, "d_steps", "must be positive")
        require(self.classifier_weight >= 0, "classifier_weight", "must be zero (off) or positive")
        require(self.classifier_weight == 0 or self.conditional, "classifier_weight",
                "the auxiliary classifier needs class labels; set model.conditional=true or classifier_weight=0")
        require(self.lr_g > 0 and self.lr_d > 0, "lr_g", "learning rates must be positive")
        require(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "betas", "two numbers in [0, 1)")
        require(len(self.hidden_sizes) > 0 and min(self.hidden_sizes) > 0, "hidden_sizes", "positive widths")
        require(self.base_channels > 0, "base_channels", "must be positive")
        if self.image_size is not None and self.name == "dcgan":
            size = self.image_size
            require(size >= 8 and size & (size - 1) == 0, "image_size",
                    f"dcgan needs a power of two >= 8, got {size}; set data.image_size=32 (or 8, 16, 64)")
        require(not (self.loss == "wgan-gp" and self.name == "dcgan" and self.discriminator_norm == "batch"),
                "discriminator_norm", "WGAN-GP penalises per-sample gradients, which batch norm mixes; "
                "set model.discriminator_norm=none")
        if self.conditional and self.num_classes is not None:
            require(self.num_classes >= 2, "conditional",
                    "the dataset has no classes; set model.conditional=false or use labelled data")


PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"z_dim": 16, "hidden_sizes": (32, 64), "base_channels": 8},
    "small": {"z_dim": 64, "hidden_sizes": (128, 256), "base_channels": 32},
    "base": {},
}
