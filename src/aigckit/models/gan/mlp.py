"""The MLP GAN of the worked example: noise 100 -> 128 -> 256 -> 512 -> image, and back down to 1."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .config import GANConfig
from .projection import ProjectionHead, maybe_spectral_norm

__all__ = ["MLPGenerator", "MLPDiscriminator"]


class MLPGenerator(nn.Module):
    """z (B, z_dim) [+ label embedding] -> fully connected layers -> tanh image (B, C, H, W)."""

    def __init__(self, config: GANConfig) -> None:
        super().__init__()
        self.shape = (config.channels, config.image_size, config.image_size)
        n_classes = config.num_classes if config.conditional else 0
        self.label_embed = nn.Embedding(n_classes, config.z_dim) if n_classes else None
        width = config.z_dim * (2 if n_classes else 1)  # z and the label embedding are concatenated
        layers: list[nn.Module] = []
        for hidden in config.hidden_sizes:
            layers += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
            width = hidden
        layers += [nn.Linear(width, config.channels * config.image_size**2), nn.Tanh()]  # pixels in [-1, 1]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """z: (B, z_dim); labels: (B,) for a conditional model. Returns (B, C, H, W) in [-1, 1]."""
        if self.label_embed is not None:
            z = torch.cat([z, self.label_embed(labels)], dim=1)
        return self.net(z).view(z.shape[0], *self.shape)


class MLPDiscriminator(nn.Module):
    """image -> 512 -> 256 -> 128 -> logit; D(x) = sigmoid(logit), applied inside the loss."""

    def __init__(self, config: GANConfig) -> None:
        super().__init__()
        width = config.channels * config.image_size**2
        layers: list[nn.Module] = []
        for hidden in reversed(config.hidden_sizes):
            layers += [maybe_spectral_norm(nn.Linear(width, hidden), config.spectral_norm), nn.LeakyReLU(0.2)]
            width = hidden
        self.features = nn.Sequential(*layers)
        n_classes = config.num_classes if config.conditional else 0
        self.head = ProjectionHead(width, n_classes, spectral_norm=config.spectral_norm,
                                   classifier=config.classifier_weight > 0)

    def forward(self, x: Tensor, labels: Tensor | None = None, *,
                with_classes: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """x: (B, C, H, W) in [-1, 1]. Returns logits (B,), and the class logits (B, K) if `with_classes`."""
        return self.head(self.features(x.flatten(1)), labels, with_classes=with_classes)
