"""Runs on spoken audio scored as sound: each generated log-mel image is turned into a waveform (Griffin-Lim), read
back the way the loader reads a file, and scored by the spoken-digit evaluator, so that the numbers describe what a
listener hears; the real test split, its Griffin-Lim resynthesis and real training clips give the ceilings.

The scores: the evaluator's accuracy on the digit asked for (overall and per digit); the classifier score (the
Inception Score's formula with the spoken-digit evaluator); and a Fréchet distance between the evaluator's
features of the clips and of the real test split, FAD's idea with our evaluator as the extractor (FAD proper uses
VGGish, which needs downloaded weights).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor

from ..audio.io import peak_normalise
from ..audio.io import write_wav
from ..config import DataConfig
from ..data import load_dataset
from ..data.audio import mel_spec, waves_to_pixels
from ..data.transforms import to_model_range
from ..imaging import save_grid
from ..pipelines.speech import images_to_waves
from .metrics import FeatureStatistics, classifier_score, conditional_accuracy, fid

__all__ = ["AUDIO_CLIPS", "GRIFFIN_LIM_ITERATIONS", "as_heard", "evaluate_audio"]

AUDIO_CLIPS = 1000  # generated clips scored as sound (each one Griffin-Lim inversion)
GRIFFIN_LIM_ITERATIONS = 64  # as `aigckit speak` makes them
WAVS_PER_CLASS = 2
GRID_PER_CLASS = 8


def as_heard(images: Tensor, data: DataConfig, *, iterations: int = GRIFFIN_LIM_ITERATIONS,
             vocoder: Any = None) -> tuple[Tensor, Tensor]:
    """(waveforms, log-mel images in [-1, 1] of those waveforms as the loader makes them from a file); `vocoder`
    None: least squares and Griffin-Lim, else a trained vocoder (aigckit.audio.vocoder)."""
    spec = mel_spec(data.image_size)
    waves = images_to_waves(images, spec, iterations=iterations, vocoder=vocoder)
    return waves, to_model_range(waves_to_pixels(list(waves.numpy()), spec))


def _scores(extract: Callable[[Tensor], tuple[Tensor, Tensor]], images: Tensor, labels: Tensor, num_classes: int,
            real_stats: FeatureStatistics | None) -> dict[str, Any]:
    features, logits = extract(images)
    score, score_std = classifier_score(logits)
    fad = None
    if real_stats is not None:
        fad = fid(real_stats, FeatureStatistics(features.shape[1]).update(features))
    return {"n": len(images), "accuracy": conditional_accuracy(logits, labels, num_classes),
            "classifier_score": score, "classifier_score_std": score_std, "frechet_distance": fad}


def _grid_order(labels: Tensor, num_classes: int, per_class: int) -> Tensor:
    """Indices of the first `per_class` samples of each class, class after class: a grid row per class."""
    return torch.cat([torch.nonzero(labels == c).flatten()[:per_class] for c in range(num_classes)])


def evaluate_audio(images: Tensor, labels: Tensor, data: DataConfig, num_classes: int,
                   extract: Callable[[Tensor], tuple[Tensor, Tensor]], real_features: Tensor, out_dir: Path,
                   seed: int = 0, vocoder: Any = None) -> dict[str, Any]:
    """The "audio" section of an audio run's metrics: generated clips (at most AUDIO_CLIPS) scored as heard, beside
    the real test split, its Griffin-Lim resynthesis and 1,000 real training clips; writes a spectrogram grid (a row
    per digit) and a few WAV files of the generated clips under out_dir. `vocoder`: as in as_heard."""
    real_stats = FeatureStatistics(real_features.shape[1]).update(real_features)
    images, labels = images[:AUDIO_CLIPS], labels[:AUDIO_CLIPS]
    waves, heard = as_heard(images, data, vocoder=vocoder)
    test = load_dataset(data, "test")
    train = load_dataset(data, "train")
    chosen = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:1000]
    rows = {
        "generated_as_heard": _scores(extract, heard, labels, num_classes, real_stats),
        "generated_spectrograms": _scores(extract, images, labels, num_classes, real_stats),
        "real_test": {**_scores(extract, test.images, test.labels, num_classes, None),
                      "frechet_distance": 0.0},
        "real_test_griffin_lim": _scores(extract, as_heard(test.images, data, vocoder=vocoder)[1], test.labels,
                                         num_classes, real_stats),
        "real_train_1000": _scores(extract, train.images[chosen], train.labels[chosen], num_classes, real_stats),
    }
    order = _grid_order(labels, num_classes, GRID_PER_CLASS)
    grid = save_grid(images[order], out_dir / "spectrograms.png", nrow=GRID_PER_CLASS, upscale=2)
    wav_dir = out_dir / "audio"
    wav_dir.mkdir(parents=True, exist_ok=True)
    rate = mel_spec(data.image_size).rate
    wavs = []
    for c in range(num_classes):
        for k, index in enumerate(torch.nonzero(labels == c).flatten()[:WAVS_PER_CLASS].tolist()):
            wavs.append(str(write_wav(wav_dir / f"{c}-{k}.wav", peak_normalise(waves[index].numpy()), rate)))
    return {"extractor": "the spoken-digit evaluator (a CNN on log-mels trained on the training split)",
            "vocoder": (f"least squares + Griffin-Lim, {GRIFFIN_LIM_ITERATIONS} iterations" if vocoder is None else
                        vocoder.describe(GRIFFIN_LIM_ITERATIONS)), "rate": rate,
            "frechet_distance": "FAD-style: Fréchet distance of the evaluator's features against the real test "
                                "split",
            **rows, "spectrogram_grid_png": str(grid), "wav_files": wavs}
