"""DCGAN networks, https://arxiv.org/abs/1511.06434: transposed convolutions up, strided convolutions down."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .config import GANConfig
from .projection import ProjectionHead, maybe_spectral_norm

__all__ = ["DCGANGenerator", "DCGANDiscriminator"]


def _widths(config: GANConfig) -> list[int]:
    """Channels per resolution level, coarsest (4x4) first: base * 2^(n-1), ..., base."""
    levels = int(math.log2(config.image_size // 4))
    return [config.base_channels * 2 ** (levels - 1 - i) for i in range(levels)]


class DCGANGenerator(nn.Module):
    """z -> 4x4 -> ... -> image_size, each step a stride-2 transposed conv + batch norm + ReLU."""

    def __init__(self, config: GANConfig) -> None:
        super().__init__()
        widths = _widths(config)
        n_classes = config.num_classes if config.conditional else 0
        self.label_embed = nn.Embedding(n_classes, config.z_dim) if n_classes else None
        z_width = config.z_dim * (2 if n_classes else 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(z_width, widths[0], 4, 1, 0, bias=False),  # (B, z, 1, 1) -> (B, w0, 4, 4)
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(),
        ]
        for w_in, w_out in zip(widths, widths[1:]):
            layers += [nn.ConvTranspose2d(w_in, w_out, 4, 2, 1, bias=False), nn.BatchNorm2d(w_out), nn.ReLU()]
        layers += [nn.ConvTranspose2d(widths[-1], config.channels, 4, 2, 1), nn.Tanh()]  # last doubling
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """z: (B, z_dim); labels: (B,) for a conditional model. Returns (B, C, H, W) in [-1, 1]."""
        if self.label_embed is not None:
            z = torch.cat([z, self.label_embed(labels)], dim=1)
        return self.net(z[:, :, None, None])


class DCGANDiscriminator(nn.Module):
    """image -> stride-2 convs + LeakyReLU(0.2) down to 4x4 -> (projection) logit."""

    def __init__(self, config: GANConfig) -> None:
        super().__init__()
        widths = list(reversed(_widths(config)))  # finest first
        sn = config.spectral_norm
        layers: list[nn.Module] = [maybe_spectral_norm(nn.Conv2d(config.channels, widths[0], 4, 2, 1), sn),
                                   nn.LeakyReLU(0.2)]  # no norm on the first layer, as in DCGAN
        for w_in, w_out in zip(widths, widths[1:]):
            layers.append(maybe_spectral_norm(nn.Conv2d(w_in, w_out, 4, 2, 1, bias=False), sn))
            if config.discriminator_norm == "batch":
                layers.append(nn.BatchNorm2d(w_out))
            layers.append(nn.LeakyReLU(0.2))
        self.features = nn.Sequential(*layers)  # (B, w_last, 4, 4)
        n_classes = config.num_classes if config.conditional else 0
        self.head = ProjectionHead(widths[-1] * 16, n_classes, spectral_norm=sn,
                                   classifier=config.classifier_weight > 0)

    def forward(self, x: Tensor, labels: Tensor | None = None, *,
                with_classes: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """x: (B, C, H, W) in [-1, 1]. Returns logits (B,), and the class logits (B, K) if `with_classes`."""
        return self.head(self.features(x).flatten(1), labels, with_classes=with_classes)
