"""VAE encoders and decoders: the MLP of the worked example and a small convolutional pair."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import VAEConfig

__all__ = ["MLPEncoder", "MLPDecoder", "ConvEncoder", "ConvDecoder"]


def _label_features(config: VAEConfig) -> int:
    return config.num_classes if config.conditional else 0


def _with_labels(h: Tensor, labels: Tensor | None, num_classes: int) -> Tensor:
    """Append a one-hot label to features (B, F) when the model is conditional."""
    if not num_classes:
        return h
    return torch.cat([h, F.one_hot(labels, num_classes).to(h.dtype)], dim=1)


class MLPEncoder(nn.Module):
    """x (B, C, H, W) -> 784 -> 128 -> (mu, log sigma^2), each (B, latent_dim)."""

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        self.num_classes = _label_features(config)
        width = config.channels * config.image_size**2 + self.num_classes
        layers: list[nn.Module] = []
        for hidden in config.hidden_sizes:
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        self.body = nn.Sequential(*layers)
        self.to_stats = nn.Linear(width, 2 * config.latent_dim)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h = self.body(_with_labels(x.flatten(1), labels, self.num_classes))
        mu, logvar = self.to_stats(h).chunk(2, dim=1)
        return mu, logvar


class MLPDecoder(nn.Module):
    """z (B, latent_dim) -> 128 -> 784 logits (or means) shaped (B, C, H, W)."""

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        self.num_classes = _label_features(config)
        self.shape = (config.channels, config.image_size, config.image_size)
        width = config.latent_dim + self.num_classes
        layers: list[nn.Module] = []
        for hidden in reversed(config.hidden_sizes):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        layers.append(nn.Linear(width, config.channels * config.image_size**2))
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.net(_with_labels(z, labels, self.num_classes)).view(z.shape[0], *self.shape)


class ConvEncoder(nn.Module):
    """x -> two stride-2 convolutions (H/4) -> linear -> (mu, log sigma^2)."""

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        c = config.base_channels
        self.num_classes = _label_features(config)
        self.convs = nn.Sequential(
            nn.Conv2d(config.channels, c, 4, 2, 1), nn.SiLU(),  # (B, c, H/2, W/2)
            nn.Conv2d(c, 2 * c, 4, 2, 1), nn.SiLU(),  # (B, 2c, H/4, W/4)
        )
        features = 2 * c * (config.image_size // 4) ** 2
        self.to_stats = nn.Linear(features + self.num_classes, 2 * config.latent_dim)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h = _with_labels(self.convs(x).flatten(1), labels, self.num_classes)
        mu, logvar = self.to_stats(h).chunk(2, dim=1)
        return mu, logvar


class ConvDecoder(nn.Module):
    """z -> linear -> (2c, H/4, W/4) -> two stride-2 transposed convolutions -> (B, C, H, W)."""

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        c = config.base_channels
        self.num_classes = _label_features(config)
        self.start = (2 * c, config.image_size // 4, config.image_size // 4)
        self.from_latent = nn.Sequential(
            nn.Linear(config.latent_dim + self.num_classes, 2 * c * (config.image_size // 4) ** 2), nn.SiLU())
        self.deconvs = nn.Sequential(
            nn.ConvTranspose2d(2 * c, c, 4, 2, 1), nn.SiLU(),  # (B, c, H/2, W/2)
            nn.ConvTranspose2d(c, config.channels, 4, 2, 1),  # (B, C, H, W)
        )

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        h = self.from_latent(_with_labels(z, labels, self.num_classes))
        return self.deconvs(h.view(z.shape[0], *self.start))
