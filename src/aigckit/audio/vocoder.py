"""Trained vocoders, each trained once per audio dataset and cached: a learned mel inverter and a Vocos-style one.

The learned mel inverter: log-mel frames -> the linear STFT magnitude, then Griffin-Lim for the phase. Tacotron's
recipe (Wang et al. 2017: a post-net from mel to linear spectrogram, Griffin-Lim after it). Least squares guesses
257 frequency bins from 64 mel bands as the smoothest spectrum with those energies, which smears the harmonics that
make a voice; the network, 1-D convolutions over time with the mel bands as channels, learns the correction to
that guess from the data. Its loss is Parallel WaveGAN's STFT loss (Yamamoto et al. 2020) at one
resolution: the L1 distance of the log magnitudes, which weighs every bin alike, plus the spectral convergence,
which weighs the loud ones. It is trained once per audio dataset (its training split, a few minutes on a CPU) and
cached like the evaluator, with its held-out spectral convergence and log-spectral distance beside those of least
squares, so that what it is worth is measured, not assumed.

The other, `vocos` (aigckit.audio.vocos: each frame's magnitude and phase predicted, one inverse STFT, no
Griffin-Lim), is cached and measured the same way; `load_or_train_vocoder(..., name=...)` picks one.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from ..atomic import atomic_directory
from ..config import DataConfig
from ..errors import AigcError
from . import vocos
from .mel import (DB_MAX, DB_MIN, MelSpec, db_to_unit, griffin_lim, log_spectral_distance, mel_to_power,
                  mel_to_waveform, pixels_to_log_mel, power_spectrogram, spectral_convergence, unit_to_db)

__all__ = ["TRAINED_VOCODERS", "MelInverter", "LearnedVocoder", "VocosVocoder", "load_vocoder",
           "load_or_train_vocoder"]

TRAINED_VOCODERS = ("learned", "vocos")
TRAIN_STEPS = {"learned": 1500, "vocos": 3000}
BATCH = 32
# cached vocoders trained with another loss are not reused
LOSS = {"learned": "log-magnitude L1 + spectral convergence", "vocos": vocos.LOSS}
NEPERS_PER_UNIT = (DB_MAX - DB_MIN) / 2 * math.log(10) / 20  # a step of 1 in [-1, 1] dB units, in ln(magnitude)


class MelInverter(nn.Module):
    """(B, n_mels, T) log-mel and (B, n_freqs, T) least-squares power, both in [-1, 1] dB units -> the linear
    power in the same units: the least-squares guess plus a learned correction (zero at initialisation)."""

    def __init__(self, n_mels: int, n_freqs: int, width: int = 256, blocks: int = 3) -> None:
        super().__init__()
        self.stem = nn.Conv1d(n_mels, width, 5, padding=2)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.GELU(), nn.Conv1d(width, width, 5, padding=2), nn.GELU(), nn.Conv1d(width, width, 1))
            for _ in range(blocks))
        self.head = nn.Conv1d(width, n_freqs, 5, padding=2)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, mel: Tensor, least_squares: Tensor) -> Tensor:
        hidden = self.stem(mel)
        for block in self.blocks:
            hidden = hidden + block(hidden)
        return least_squares + self.head(F.gelu(hidden))


class LearnedVocoder:
    """A trained MelInverter for one spectrogram, with what identifies it (held-out figures, weights hash)."""

    name, title = "learned", "learned mel inverter + Griffin-Lim"
    uses_griffin_lim = True

    def __init__(self, net: MelInverter, spec: MelSpec, info: dict) -> None:
        self.net, self.spec, self.info = net.eval(), spec, info

    def describe(self, iterations: int) -> str:
        """What turns spectrograms into sound, in words."""
        return f"learned mel inverter (sha256 {self.info['sha256'][:12]}) + Griffin-Lim, {iterations} iterations"

    def _inputs(self, db: Tensor) -> tuple[Tensor, Tensor]:
        floor = 10 ** (DB_MIN / 10)
        return db_to_unit(db.float()), db_to_unit(10 * torch.log10(mel_to_power(db, self.spec).clamp_min(floor)))

    @torch.no_grad()
    def magnitude(self, db: Tensor) -> Tensor:
        """(B, n_mels, frames) log-mel dB -> (B, n_freqs, frames) linear STFT magnitude."""
        power_db = unit_to_db(self.net(*self._inputs(db)).clamp(-1, 1))
        return torch.pow(10.0, power_db / 20)

    def waveform(self, db: Tensor, *, iterations: int = 64) -> Tensor:
        """(B, n_mels, frames) log-mel dB -> (B, length) waves: the learned magnitude, then Griffin-Lim."""
        return griffin_lim(self.magnitude(db), self.spec, iterations=iterations)

    def fit(self, real: Tensor, db: Tensor, *, steps: int, seed: int) -> dict:
        """Train the mel inverter on clips (waves and their log-mel dB); returns the last batch's figures."""
        return _train_inverter(self, real, db, steps=steps, seed=seed)


class VocosVocoder:
    """A trained VocosNet for one spectrogram, with what identifies it (held-out figures, weights hash)."""

    name, title = "vocos", "Vocos-style vocoder"
    uses_griffin_lim = False

    def __init__(self, net: vocos.VocosNet, spec: MelSpec, info: dict) -> None:
        self.net, self.spec, self.info = net.eval(), spec, info

    def describe(self, iterations: int) -> str:
        """What turns spectrograms into sound, in words (`iterations` is unused: no Griffin-Lim)."""
        return f"Vocos-style vocoder (sha256 {self.info['sha256'][:12]}), one inverse STFT"

    @torch.no_grad()
    def waveform(self, db: Tensor, *, iterations: int = 64) -> Tensor:
        """(B, n_mels, frames) log-mel dB -> (B, length) waves (`iterations` is unused: the phase is predicted)."""
        return torch.cat([self.net(db[start:start + 256]) for start in range(0, len(db), 256)])

    def fit(self, real: Tensor, db: Tensor, *, steps: int, seed: int) -> dict:
        """Train the network on clips (waves and their log-mel dB); returns the last batch's loss."""
        return vocos.train_vocos(self.net, real, db, steps=steps, seed=seed)


def _build(name: str, spec: MelSpec) -> LearnedVocoder | VocosVocoder:
    """An untrained vocoder called `name`; AigcError for an unknown name."""
    if name == "learned":
        return LearnedVocoder(MelInverter(spec.n_mels, spec.n_freqs), spec, {})
    if name == "vocos":
        return VocosVocoder(vocos.VocosNet(spec), spec, {})
    raise AigcError(f"no trained vocoder {name!r}; use one of {', '.join(TRAINED_VOCODERS)}")


def _clips(data: DataConfig, split: str, spec: MelSpec) -> tuple[Tensor, Tensor]:
    """(waves, stored log-mel dB) of a split: each clip fitted and peak-normalised as the loader does, its log-mel
    through the 8-bit image a model learns."""
    from ..data.audio import fitted_to_pixels, split_waves

    waves = split_waves(data, split, spec)
    return torch.from_numpy(waves), pixels_to_log_mel(fitted_to_pixels(waves, spec))


def _held_out(vocoder: LearnedVocoder | VocosVocoder, data: DataConfig, iterations: int = 64) -> dict:
    real, db = _clips(data, "test", vocoder.spec)
    magnitude = power_spectrogram(real, vocoder.spec).sqrt()
    out = {"clips": len(real), "griffin_lim_iterations": iterations}
    for name, waves in (("least_squares", mel_to_waveform(db, vocoder.spec, iterations=iterations)),
                        (vocoder.name, vocoder.waveform(db, iterations=iterations))):
        out[name] = {"spectral_convergence": float(spectral_convergence(waves, magnitude, vocoder.spec).mean()),
                     "log_spectral_distance_db": float(log_spectral_distance(waves, real, vocoder.spec).mean())}
    return out


def _folder(name: str, data: DataConfig, cache_dir: Path) -> Path:
    from ..data.base import data_fingerprint

    fingerprint = data_fingerprint(data, "train", "test")
    loss = hashlib.sha256(LOSS[name].encode()).hexdigest()[:8]
    return Path(cache_dir) / "vocoders" / f"{name}-{data.name}-{data.image_size}-{fingerprint}-loss{loss}"


def load_vocoder(data: DataConfig, spec: MelSpec, cache_dir: Path, *,
                 name: str = "learned") -> LearnedVocoder | VocosVocoder | None:
    """The trained vocoder `name` of an audio dataset at this spectrogram from <cache>/vocoders/; None if not
    trained yet."""
    folder = _folder(name, data, cache_dir)
    if not (folder / "info.json").is_file():
        return None
    vocoder = _build(name, spec)
    info = json.loads((folder / "info.json").read_text())
    weights = folder / "model.safetensors"
    if hashlib.sha256(weights.read_bytes()).hexdigest() != info["sha256"]:
        raise AigcError(f"{weights} is damaged; delete {folder} to train the vocoder again")
    vocoder.net.load_state_dict(load_file(str(weights)))
    vocoder.info = info
    return vocoder


def load_or_train_vocoder(data: DataConfig, spec: MelSpec, cache_dir: Path, *, name: str = "learned",
                          steps: int | None = None, seed: int = 0) -> LearnedVocoder | VocosVocoder:
    """The trained vocoder `name` (TRAINED_VOCODERS) of an audio dataset at this spectrogram, trained once on its
    training split (TRAIN_STEPS[name] steps unless given), then read from <cache>/vocoders/."""
    cached = load_vocoder(data, spec, cache_dir, name=name)
    if cached is not None:
        return cached
    steps = TRAIN_STEPS[name] if steps is None else steps
    real, db = _clips(data, "train", spec)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vocoder = _build(name, spec)
    figures = vocoder.fit(real, db, steps=steps, seed=seed)
    folder = _folder(name, data, cache_dir)
    info = {"vocoder": vocoder.title, "dataset": data.name, "image_size": data.image_size,
            "data_fingerprint": folder.name.rsplit("-", 2)[1], "spectrogram": repr(spec), "train_steps": steps,
            "loss": LOSS[name], "seed": seed, "train_clips": len(real), **figures,
            "held_out": _held_out(vocoder, data)}
    with atomic_directory(folder) as tmp:
        save_file({k: v.contiguous() for k, v in vocoder.net.state_dict().items()}, str(tmp / "model.safetensors"))
        info["sha256"] = hashlib.sha256((tmp / "model.safetensors").read_bytes()).hexdigest()
        (tmp / "info.json").write_text(json.dumps(info, indent=2) + "\n")
    vocoder.info = info
    return vocoder


def _train_inverter(vocoder: LearnedVocoder, real: Tensor, db: Tensor, *, steps: int, seed: int) -> dict:
    """Train the mel inverter on clips (waves and their log-mel dB); returns the last batch's figures."""
    net, spec = vocoder.net, vocoder.spec
    inputs = vocoder._inputs(db)
    target = db_to_unit(10 * torch.log10(power_spectrogram(real, spec).clamp_min(10 ** (DB_MIN / 10))))
    magnitude = torch.pow(10.0, unit_to_db(target) / 20)  # the true magnitude, within the images' dB range
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    net.train()
    for step in range(steps):
        batch = torch.randint(len(real), (BATCH,), generator=generator)
        predicted = net(inputs[0][batch], inputs[1][batch])
        log_l1 = NEPERS_PER_UNIT * F.l1_loss(predicted, target[batch])
        error = magnitude[batch] - torch.pow(10.0, unit_to_db(predicted.clamp(-1, 1)) / 20)
        convergence = (error.norm(dim=(1, 2)) / magnitude[batch].norm(dim=(1, 2))).mean()
        loss = log_l1 + convergence
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        for group in optimizer.param_groups:  # cosine decay to zero
            group["lr"] = 5e-4 * (1 + math.cos(math.pi * (step + 1) / steps))
    net.eval()
    return {"final_loss": loss.item(), "final_log_l1": log_l1.item(),
            "final_spectral_convergence": convergence.item()}
