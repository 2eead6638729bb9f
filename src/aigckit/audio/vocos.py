"""A Vocos-style neural vocoder: log-mel frames -> each frame's complex spectrum -> one inverse STFT.

Vocos (Siuzdak 2023) showed that a neural vocoder need not upsample to the sample rate as MelGAN and HiFi-GAN do: a
ConvNeXt stack working at the spectrogram's frame rate predicts every frame's magnitude and phase, and an inverse
STFT makes the samples. That is what a CPU can train in minutes — the network sees 64 frames where a waveform
generator sees 8,192 samples — and it needs no Griffin-Lim at inference, one inverse STFT instead of 64 iterations.

Here the log magnitude is predicted as a correction to the least-squares guess from the mel bands (the mel
inverter's idea), the phase directly, and the loss is Parallel WaveGAN's multi-resolution STFT loss on the
samples (spectral convergence plus log-magnitude L1 at four FFT sizes), which also teaches the phase: a spectrum
whose phases do not fit together does not survive the inverse STFT and the re-analysis at other sizes. Vocos's
discriminators are left out (not tried here: they would about double a step's cost).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .mel import DB_MIN, MelSpec, db_to_unit, mel_to_power

__all__ = ["VocosNet", "multi_resolution_stft_loss", "train_vocos"]

RESOLUTIONS = ((512, 128), (256, 64), (1024, 256), (128, 32))  # (FFT size, hop) of the loss, at 8 kHz
BATCH = 16
LOSS = "multi-resolution STFT: spectral convergence + log-magnitude L1 at FFT 512, 256, 1024, 128"


class ConvNeXtBlock(nn.Module):
    """ConvNeXt's block in 1-D: a depthwise convolution over time, LayerNorm, an inverted bottleneck, layer scale."""

    def __init__(self, width: int, kernel: int = 7, expansion: int = 3) -> None:
        super().__init__()
        self.depthwise = nn.Conv1d(width, width, kernel, padding=kernel // 2, groups=width)
        self.norm = nn.LayerNorm(width)
        self.expand = nn.Linear(width, expansion * width)
        self.project = nn.Linear(expansion * width, width)
        self.scale = nn.Parameter(torch.full((width,), 0.125))

    def forward(self, x: Tensor) -> Tensor:
        """(B, width, T) -> (B, width, T)."""
        h = self.norm(self.depthwise(x).transpose(1, 2))
        h = self.project(F.gelu(self.expand(h))) * self.scale
        return x + h.transpose(1, 2)


class VocosNet(nn.Module):
    """(B, n_mels, frames) log-mel dB -> (B, length) waves: ConvNeXt blocks at the frame rate, a head giving each
    frame's log magnitude (a correction to least squares, zero at initialisation) and phase, an inverse STFT."""

    def __init__(self, spec: MelSpec, width: int = 256, blocks: int = 6) -> None:
        super().__init__()
        self.spec = spec
        self.stem = nn.Conv1d(spec.n_mels, width, 7, padding=3)
        self.stem_norm = nn.LayerNorm(width)
        self.blocks = nn.ModuleList(ConvNeXtBlock(width) for _ in range(blocks))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, 2 * spec.n_freqs)
        nn.init.zeros_(self.head.bias)
        with torch.no_grad():
            self.head.weight[:spec.n_freqs].zero_()
            self.head.weight[spec.n_freqs:].normal_(0, 0.02)
        self.register_buffer("window", spec.window(), persistent=False)

    def forward(self, db: Tensor) -> Tensor:
        # a centred STFT of `length` samples has one frame more than the image keeps: repeat the last one
        db = torch.cat([db, db[..., -1:]], dim=-1).float()
        least_squares = 0.5 * torch.log(mel_to_power(db, self.spec).clamp_min(10 ** (DB_MIN / 10)))
        x = self.stem(db_to_unit(db))
        x = self.stem_norm(x.transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        log_magnitude, phase = self.head(self.norm(x.transpose(1, 2))).transpose(1, 2).chunk(2, dim=1)
        magnitude = torch.exp((least_squares + log_magnitude).clamp(max=math.log(1e3)))
        return torch.istft(torch.polar(magnitude, phase), self.spec.n_fft, self.spec.hop, window=self.window,
                           center=True, length=self.spec.length)


def multi_resolution_stft_loss(waves: Tensor, target: Tensor) -> Tensor:
    """Parallel WaveGAN's auxiliary loss: over RESOLUTIONS, the spectral convergence plus the L1 distance of log
    magnitudes, averaged."""
    total = waves.new_zeros(())
    for n_fft, hop in RESOLUTIONS:
        window = torch.hann_window(n_fft, device=waves.device)
        ours, theirs = (torch.stft(w, n_fft, hop, window=window, return_complex=True).abs().clamp_min(1e-5)
                        for w in (waves, target))
        convergence = torch.linalg.norm((ours - theirs).flatten(1), dim=1) / torch.linalg.norm(theirs.flatten(1), dim=1)
        total = total + convergence.mean() + F.l1_loss(ours.log(), theirs.log())
    return total / len(RESOLUTIONS)


def train_vocos(net: VocosNet, waves: Tensor, db: Tensor, *, steps: int, seed: int = 0,
                lr: float = 1e-3) -> dict[str, float]:
    """Train `net` on clips (waves and their log-mel dB) for `steps` batches of BATCH (AdamW, cosine decay to zero,
    gradients clipped at norm 10); returns the last batch's loss."""
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, betas=(0.8, 0.99))
    generator = torch.Generator().manual_seed(seed)
    net.train()
    for step in range(steps):
        batch = torch.randint(len(waves), (BATCH,), generator=generator)
        loss = multi_resolution_stft_loss(net(db[batch]), waves[batch].float())
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 10.0)
        optimizer.step()
        for group in optimizer.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * (step + 1) / steps))
    net.eval()
    return {"final_loss": loss.item()}
