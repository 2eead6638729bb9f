"""The first stage of latent diffusion: a small convolutional autoencoder that maps an image (or each frame of a
clip) to a latent map a quarter of its side, where the diffusion UNet then works.

Latent diffusion (Rombach et al. 2022, https://arxiv.org/abs/2112.10752; for video, Video LDM, Blattmann et al.
2023, https://arxiv.org/abs/2304.08818) trains the autoencoder first and freezes it; the UNet learns to denoise its
latents, and samples are decoded at the end. Why here: a UNet on 4x4 pixel patches (what fits 20 minutes of
video training on 2 CPU cores) ends in one linear map from each patch's features to its 16 pixels, which cannot
draw a digit's strokes; the decoder here is a nonlinear network trained to draw them, so the UNet can run on an
8x8 grid at the same cost and only has to place the digits.

Trained with an L1 reconstruction loss and a small L2 penalty on the latents (in place of a VAE's KL term: it keeps
their scale bounded); noise of a tenth of the latents' spread is added during training, so that the decoder
tolerates a denoiser's small errors. The latents the UNet sees are normalised per channel by their running mean and
deviation over the autoencoder's training (Stable Diffusion's scale factor, per channel).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["Autoencoder", "LATENT_NOISE", "LATENT_PENALTY"]

LATENT_NOISE = 0.1  # training noise on the latents, in units of their spread in the batch
LATENT_PENALTY = 1e-4  # weight of the mean squared latent in the loss
STATISTICS_MOMENTUM = 0.01  # of the running latent statistics, as batch norm's default 0.1 but slower


def _block(inputs: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(inputs, outputs, 3, padding=1), nn.GroupNorm(8, outputs), nn.SiLU())


class Autoencoder(nn.Module):
    """Images (B, C, H, W) in [-1, 1] <-> latents (B, latent_channels, H/4, W/4), normalised per channel."""

    def __init__(self, channels: int, latent_channels: int, width: int = 64) -> None:
        super().__init__()
        half = width // 2
        self.encoder = nn.Sequential(  # two stride-2 convolutions: config.LATENT_FACTOR
            nn.Conv2d(channels, half, 4, 2, 1), nn.SiLU(), _block(half, width),  # H/2
            nn.Conv2d(width, width, 4, 2, 1), nn.SiLU(), _block(width, width),  # H/4
            nn.Conv2d(width, latent_channels, 3, padding=1))
        self.decoder = nn.Sequential(
            nn.Conv2d(latent_channels, width, 3, padding=1), nn.SiLU(), _block(width, width),
            nn.Upsample(scale_factor=2), _block(width, half),  # H/2
            nn.Upsample(scale_factor=2), nn.Conv2d(half, half // 2, 3, padding=1), nn.SiLU(),  # H
            nn.Conv2d(half // 2, channels, 3, padding=1))
        # running per-channel mean and deviation of the raw latents, kept like batch norm's during training
        self.register_buffer("latent_mean", torch.zeros(latent_channels))
        self.register_buffer("latent_std", torch.ones(latent_channels))
        self.register_buffer("batches_seen", torch.zeros((), dtype=torch.long))

    def forward(self, images: Tensor, noise: Tensor) -> tuple[Tensor, Tensor]:
        """The training pass on images (B, C, H, W): (loss, L1 reconstruction error). noise: standard normal,
        shaped like the latents (the seeded training noise). Updates the running latent statistics."""
        z = self.encoder(images)
        self._track(z.detach())
        z_noisy = z + LATENT_NOISE * z.detach().std() * noise.to(z.dtype)
        reconstruction = F.l1_loss(self.decoder(z_noisy).float(), images.float())
        return reconstruction + LATENT_PENALTY * z.float().square().mean(), reconstruction.detach()

    @torch.no_grad()
    def _track(self, z: Tensor) -> None:
        flat = z.float().transpose(0, 1).flatten(1)
        momentum = max(STATISTICS_MOMENTUM, 1.0 / float(self.batches_seen + 1))  # a plain mean at first
        self.latent_mean.lerp_(flat.mean(1), momentum)
        self.latent_std.lerp_(flat.std(1), momentum)
        self.batches_seen += 1

    def encode(self, images: Tensor) -> Tensor:
        """(B, C, H, W) -> latents (B, latent_channels, H/4, W/4), about zero-mean and unit-variance per channel."""
        return (self.encoder(images) - self.latent_mean[:, None, None]) / self.latent_std[:, None, None]

    def decode(self, latents: Tensor) -> Tensor:
        """Normalised latents (B, latent_channels, h, w) -> images (B, C, 4h, 4w), unclamped."""
        return self.decoder(latents * self.latent_std[:, None, None] + self.latent_mean[:, None, None])
