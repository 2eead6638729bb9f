"""Speech from a model trained on spoken audio (log-mel images, `aigckit.data.audio`): clips of a class, and a
number spoken digit by digit.

`speak` samples one clip per digit from a class-conditional model, turns each log-mel image back into a waveform
(least-squares mel inversion and Griffin-Lim), cuts each word's leading and trailing quiet, fades it in and out,
and joins the words with short pauses: speech synthesis for the vocabulary the data has.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..audio.io import peak_normalise, trim_silence
from ..audio.mel import MelSpec, images_to_log_mel, mel_to_waveform
from ..errors import AigcError

__all__ = ["AUDIO_DATASETS", "VOCODERS", "trained_on_audio", "audio_spec", "images_to_waves", "run_vocoder",
           "parse_digits", "join_words", "speak"]

AUDIO_DATASETS = ("fsdd", "audiofolder")


def trained_on_audio(run_dir: str | Path) -> bool:
    """Whether a run's model was trained on spoken audio (its images are log-mel spectrograms)."""
    from ..evaluation.evaluate import run_config

    return run_config(Path(run_dir)).data.name in AUDIO_DATASETS


def audio_spec(run_dir: str | Path) -> MelSpec:
    """The spectrogram a run's model makes, from the data it was trained on; AigcError for a run not on audio."""
    from ..data.audio import mel_spec
    from ..evaluation.evaluate import run_config

    data = run_config(Path(run_dir)).data
    if data.name not in AUDIO_DATASETS:
        raise AigcError(f"{run_dir} was trained on {data.name}, not on audio ({', '.join(AUDIO_DATASETS)}); "
                        f"train one with configs/diffusion-fsdd.yaml")
    return mel_spec(data.image_size)


VOCODERS = ("griffin-lim", "learned", "vocos")


def images_to_waves(images: Tensor, spec: MelSpec, *, iterations: int = 64, vocoder: Any = None) -> Tensor:
    """(n, 1, n_mels, frames) log-mel images in [-1, 1] -> (n, length) waveforms: the least-squares magnitude and
    Griffin-Lim's phase, or, given a trained vocoder (aigckit.audio.vocoder), what it makes."""
    if vocoder is not None:
        return vocoder.waveform(images_to_log_mel(images), iterations=iterations)
    return mel_to_waveform(images_to_log_mel(images), spec, iterations=iterations)


def run_vocoder(run_dir: str | Path, name: str, cache_dir: Path | None = None) -> Any:
    """The vocoder called `name` for a run on audio: None for Griffin-Lim alone, else that trained vocoder of the
    run's data (trained once, a few minutes, then cached); AigcError for an unknown name."""
    if name not in VOCODERS:
        raise AigcError(f"no vocoder {name!r}; use one of {', '.join(VOCODERS)}")
    if name == "griffin-lim":
        return None
    from ..audio.vocoder import load_or_train_vocoder
    from ..cache import default_cache_dir
    from ..evaluation.evaluate import run_config

    return load_or_train_vocoder(run_config(Path(run_dir)).data, audio_spec(run_dir), cache_dir or default_cache_dir(),
                                 name=name)


def parse_digits(text: str, num_classes: int) -> list[int]:
    """The digits of "4 0 7 2", "4072" or "4,0,7,2" as class labels; AigcError for anything else."""
    digits = re.sub(r"[\s,.-]", "", text)
    if not digits or not digits.isdigit():
        raise AigcError(f"say digits, e.g. \"4 0 7 2\"; got {text!r}")
    labels = [int(d) for d in digits]
    if max(labels) >= num_classes:
        raise AigcError(f"this model knows {num_classes} classes (0 to {num_classes - 1}); {max(labels)} is not one")
    return labels


def join_words(words: list[np.ndarray], rate: int, *, pause: float = 0.12, fade: float = 0.01) -> np.ndarray:
    """Words joined with `pause` seconds of silence, each faded in and out over `fade` seconds (raised cosine)
    so that no join clicks; `pause = -fade` overlaps the fades, a cross-fade (the two ramps sum to one)."""
    if pause < -fade:
        raise AigcError(f"a pause of {pause} s would overlap words by more than their {fade} s fades; use at least "
                        f"{-fade}")
    fade_samples = max(1, int(fade * rate))
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, fade_samples))
    step = round(pause * rate)
    pieces = []
    for word in words:
        word = word.astype(np.float32).copy()
        n = min(fade_samples, len(word) // 2)
        if n:
            word[:n] *= ramp[:n]
            word[-n:] *= ramp[:n][::-1]
        pieces.append(word)
    total = sum(len(p) for p in pieces) + step * (len(pieces) - 1)
    out = np.zeros(max(total, max(len(p) for p in pieces)), dtype=np.float32)
    position = 0
    for piece in pieces:
        out[position:position + len(piece)] += piece
        position += len(piece) + step
    return out


def speak(pipeline: Any, spec: MelSpec, text: str, *, seed: int = 0, iterations: int = 64, pause: float = 0.12,
          fade: float = 0.01, vocoder: Any = None) -> tuple[np.ndarray, dict[str, Any]]:
    """The digits of `text` spoken by a class-conditional model trained on spoken digits: (samples at spec.rate,
    what was made: the digits, seed, vocoder, iterations); `vocoder` from run_vocoder (None: Griffin-Lim alone)."""
    if not pipeline.num_classes:
        raise AigcError("this model is not class-conditional, so it cannot say a chosen digit; train it with "
                        "model.conditional: true")
    labels = parse_digits(text, pipeline.num_classes)
    with torch.no_grad():
        images = pipeline.sample(len(labels), labels=labels, seed=seed)
    waves = images_to_waves(images, spec, iterations=iterations, vocoder=vocoder).numpy()
    words = [trim_silence(peak_normalise(wave)) for wave in waves]
    speech = peak_normalise(join_words(words, spec.rate, pause=pause, fade=fade))
    used = "griffin-lim" if vocoder is None else f"{vocoder.name} (sha256 {vocoder.info['sha256'][:12]})"
    uses_griffin_lim = vocoder is None or vocoder.uses_griffin_lim
    return speech, {"digits": labels, "seed": seed, "vocoder": used,
                    "griffin_lim_iterations": iterations if uses_griffin_lim else None,
                    "rate": spec.rate, "seconds": round(len(speech) / spec.rate, 3)}
