"""The log-mel spectrogram (torch.stft; mel filters from transformers' audio_utils, Slaney's scale and
normalisation, as librosa), its mapping to a one-channel image, and the way back to a waveform: the mel inverted
by least squares, then the phase recovered by fast Griffin-Lim (Perraudin, Balazs and Sondergaard 2013).

A clip of `MelSpec.length` samples gives `frames` x `n_mels` log-mel values; as an image the rows are the mel bands
with the lowest at the bottom (as spectrograms are drawn), the columns time, and the values
[DB_MIN, DB_MAX] dB spread over [-1, 1] (the model range), clipped outside.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from ..errors import AigcError

__all__ = ["MelSpec", "DB_MIN", "DB_MAX", "db_to_unit", "unit_to_db", "power_spectrogram", "log_mel",
           "log_mel_to_images", "images_to_log_mel", "log_mel_to_pixels", "pixels_to_log_mel", "griffin_lim",
           "mel_to_power", "mel_to_waveform", "spectral_convergence", "log_spectral_distance"]

DB_MIN, DB_MAX = -80.0, 25.0  # the dB range an image holds (power of a clip peak-normalised to 0.95; 0.41 dB a level)
_EPS = 1e-10


@dataclass(frozen=True)
class MelSpec:
    """How a clip becomes a log-mel image: sampling rate, FFT size (Hann window of the same length), hop, mel
    bands, frames kept (the clip is hop * frames samples long) and the mel filters' frequency range."""

    rate: int = 8000
    n_fft: int = 512
    hop: int = 128
    n_mels: int = 64
    frames: int = 64
    fmin: float = 20.0
    fmax: float | None = None  # None: rate / 2

    @property
    def length(self) -> int:
        """Samples in a clip: hop * frames."""
        return self.hop * self.frames

    @property
    def n_freqs(self) -> int:
        """Frequency bins of the STFT."""
        return self.n_fft // 2 + 1

    def filters(self) -> Tensor:
        """(n_freqs, n_mels) mel filter bank, float32."""
        return torch.from_numpy(_filters(self.n_freqs, self.n_mels, self.fmin, self.fmax or self.rate / 2, self.rate))

    def window(self) -> Tensor:
        """The analysis window: periodic Hann of n_fft samples."""
        return torch.hann_window(self.n_fft, periodic=True)


@lru_cache(maxsize=8)
def _filters(n_freqs: int, n_mels: int, fmin: float, fmax: float, rate: int) -> np.ndarray:
    from transformers.audio_utils import mel_filter_bank

    return mel_filter_bank(num_frequency_bins=n_freqs, num_mel_filters=n_mels, min_frequency=fmin,
                           max_frequency=fmax, sampling_rate=rate, norm="slaney", mel_scale="slaney").astype(np.float32)


def _stft(waves: Tensor, spec: MelSpec) -> Tensor:
    return torch.stft(waves, spec.n_fft, spec.hop, window=spec.window().to(waves.device), center=True,
                      pad_mode="reflect", return_complex=True)


def power_spectrogram(waves: Tensor, spec: MelSpec) -> Tensor:
    """(B, length) float waves -> (B, n_freqs, frames) power |STFT|^2 (frames centred on multiples of hop)."""
    if waves.ndim != 2 or waves.shape[1] != spec.length:
        raise AigcError(f"a clip for this spectrogram is {spec.length} samples; got shape {tuple(waves.shape)} "
                        f"(fit it with aigckit.audio.fit_length)")
    return _stft(waves.float(), spec).abs().square()[..., :spec.frames]


def log_mel(waves: Tensor, spec: MelSpec) -> Tensor:
    """(B, length) waves -> (B, n_mels, frames) log-mel power in dB (10 log10, floored at 1e-10)."""
    mel = torch.einsum("bft,fm->bmt", power_spectrogram(waves, spec), spec.filters().to(waves.device))
    return 10 * torch.log10(mel.clamp_min(_EPS))


def db_to_unit(db: Tensor) -> Tensor:
    """dB -> [-1, 1] over the range an image holds (DB_MIN to DB_MAX), clipped outside."""
    return (db.clamp(DB_MIN, DB_MAX) - DB_MIN) / (DB_MAX - DB_MIN) * 2 - 1


def unit_to_db(unit: Tensor) -> Tensor:
    """[-1, 1] -> dB: db_to_unit's inverse."""
    return (unit + 1) / 2 * (DB_MAX - DB_MIN) + DB_MIN


def log_mel_to_images(db: Tensor) -> Tensor:
    """(B, n_mels, frames) dB -> (B, 1, n_mels, frames) in [-1, 1], lowest band at the bottom row."""
    unit = ((db - DB_MIN) / (DB_MAX - DB_MIN)).clamp(0, 1)
    return (2 * unit - 1).flip(-2).unsqueeze(1)


def images_to_log_mel(images: Tensor) -> Tensor:
    """(B, 1, n_mels, frames) in [-1, 1] (a model's output) -> (B, n_mels, frames) dB."""
    return ((images.float().clamp(-1, 1).squeeze(1).flip(-2) + 1) / 2) * (DB_MAX - DB_MIN) + DB_MIN


def log_mel_to_pixels(db: Tensor) -> np.ndarray:
    """(B, n_mels, frames) dB -> uint8 (B, 1, n_mels, frames): how a dataset stores them (0.39 dB a level)."""
    return ((log_mel_to_images(db) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()


def pixels_to_log_mel(pixels: np.ndarray | Tensor) -> Tensor:
    """uint8 (B, 1, n_mels, frames) -> (B, n_mels, frames) dB."""
    return images_to_log_mel(torch.as_tensor(np.asarray(pixels), dtype=torch.float32) / 127.5 - 1)


def griffin_lim(magnitude: Tensor, spec: MelSpec, *, iterations: int = 64, momentum: float = 0.99,
                seed: int = 0) -> Tensor:
    """(B, n_freqs, frames) STFT magnitude -> (B, length) waves whose STFT magnitude approaches it.

    Fast Griffin-Lim: alternate projections (consistent STFT, then the given magnitude) with the extrapolation
    step `momentum` (0 is plain Griffin-Lim, 1984); phases start at random (seeded)."""
    frames = magnitude.shape[-1]
    full = spec.frames + 1  # a centred STFT of `length` samples has one frame more than the image keeps
    if frames == spec.frames:  # the last frame is not kept: repeat the one before it
        magnitude = torch.cat([magnitude, magnitude[..., -1:]], dim=-1)
    elif frames != full:
        raise AigcError(f"a magnitude of {frames} frames does not fit a {spec.length}-sample clip")
    generator = torch.Generator().manual_seed(seed)
    phase = torch.rand(magnitude.shape, generator=generator) * 2 * torch.pi
    angles = torch.polar(torch.ones_like(magnitude), phase.to(magnitude.device))
    window = spec.window().to(magnitude.device)
    previous = torch.zeros_like(angles)
    for _ in range(iterations):
        waves = torch.istft(magnitude * angles, spec.n_fft, spec.hop, window=window, center=True, length=spec.length)
        rebuilt = _stft(waves, spec)
        angles = rebuilt - (momentum / (1 + momentum)) * previous
        angles = angles / (angles.abs() + 1e-16)
        previous = rebuilt
    return torch.istft(magnitude * angles, spec.n_fft, spec.hop, window=window, center=True, length=spec.length)


def mel_to_power(db: Tensor, spec: MelSpec) -> Tensor:
    """(B, n_mels, frames) log-mel dB -> (B, n_freqs, frames) linear power by least squares (the filters'
    pseudo-inverse, clipped at 0): the smoothest spectrum with these mel energies."""
    mel_power = torch.pow(10.0, db.float() / 10)
    return torch.einsum("mf,bmt->bft", _pseudo_inverse(spec).to(db.device), mel_power).clamp_min(0)


@lru_cache(maxsize=8)
def _pseudo_inverse(spec: MelSpec) -> Tensor:
    """(n_mels, n_freqs) pseudo-inverse of the mel filters, computed once per spectrogram (read, never written)."""
    return torch.linalg.pinv(spec.filters())


def mel_to_waveform(db: Tensor, spec: MelSpec, *, iterations: int = 64) -> Tensor:
    """(B, n_mels, frames) log-mel dB -> (B, length) waves: linear power by least squares, then Griffin-Lim on
    its square root."""
    return griffin_lim(mel_to_power(db, spec).sqrt(), spec, iterations=iterations)


def spectral_convergence(waves: Tensor, magnitude: Tensor, spec: MelSpec) -> Tensor:
    """(B,) || |STFT(waves)| - magnitude ||_F / || magnitude ||_F over the kept frames: 0 when consistent."""
    rebuilt = power_spectrogram(waves, spec).sqrt()
    target = magnitude[..., :spec.frames]
    return torch.linalg.norm((rebuilt - target).flatten(1), dim=1) / torch.linalg.norm(target.flatten(1), dim=1)


def log_spectral_distance(waves: Tensor, reference: Tensor, spec: MelSpec) -> Tensor:
    """(B,) log-spectral distance in dB: per frame, the RMS over frequencies of the difference of the two power
    spectra in dB (each floored at DB_MIN), averaged over frames; 0 for the same sound."""
    floor = 10 ** (DB_MIN / 10)
    db = 10 * torch.log10(power_spectrogram(waves, spec).clamp_min(floor))
    reference_db = 10 * torch.log10(power_spectrogram(reference, spec).clamp_min(floor))
    return (db - reference_db).square().mean(dim=1).sqrt().mean(dim=1)
