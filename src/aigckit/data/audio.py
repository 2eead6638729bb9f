"""Spoken audio as log-mel images: the Free Spoken Digit Dataset (`fsdd`) and any folder of audio files
(`audiofolder`).

Every clip is read with soundfile, resampled to RATE, its sound (leading and trailing quiet cut) centred in
CLIP_SAMPLES (1.024 s; every FSDD recording is shorter), peak-normalised, and turned into a log-mel spectrogram of
image_size mel bands x image_size frames (aigckit.audio.mel), stored as a one-channel uint8 image: so the image
families (diffusion, GANs, VAEs) model sound unchanged, and `aigckit.audio.mel_to_waveform` turns what they make
back into audio.

FSDD (https://github.com/Jakobovski/free-spoken-digit-dataset): recordings/{digit}_{speaker}_{index}.wav, 3,000
clips, 10 digits, 6 speakers, 8 kHz; the official split: index 0-4 test, 5-49 train (val: a share of train).
The label is the digit; `fsdd_files` gives the speaker of each clip as well.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import tempfile
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..audio.io import fit_length, peak_normalise, read_audio
from ..audio.mel import DB_MAX, DB_MIN, MelSpec, log_mel, log_mel_to_pixels
from ..config import DataConfig
from ..errors import DataError
from .base import ImageDataset, data_root, files_digest, register_dataset, split_indices
from .decode_cache import Decoded, cached_decode

__all__ = ["RATE", "CLIP_SAMPLES", "AUDIO_SUFFIXES", "FSDD_URL", "mel_spec", "fsdd_files", "clips_to_pixels",
           "fit_clip", "split_waves", "waves_to_pixels", "fitted_to_pixels", "split_clips", "load_fsdd",
           "load_audiofolder"]

RATE = 8000  # Hz: FSDD's rate; other audio is resampled to it
CLIP_SAMPLES = 8192  # 1.024 s
IMAGE_SIZES = (32, 64, 128)  # mel bands = frames; the hop is CLIP_SAMPLES / size
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
FSDD_COMMIT = "26eb9aaf76e81b692f806f9140c2d2777410d7a1"
FSDD_URL = f"https://github.com/Jakobovski/free-spoken-digit-dataset/archive/{FSDD_COMMIT}.zip"
_FSDD_NAME = re.compile(r"^(\d)_([a-z]+)_(\d+)\.wav$")


def mel_spec(image_size: int) -> MelSpec:
    """The spectrogram of an audio dataset at `image_size`: image_size mel bands and frames over a 1.024 s clip."""
    if image_size not in IMAGE_SIZES:
        raise DataError(f"audio data is made at image_size {', '.join(map(str, IMAGE_SIZES))} (mel bands = frames "
                        f"over 1.024 s), not {image_size}; set data.image_size to one of them")
    return MelSpec(rate=RATE, n_fft=512, hop=CLIP_SAMPLES // image_size, n_mels=image_size, frames=image_size)


def clips_to_pixels(paths: list[Path], spec: MelSpec) -> np.ndarray:
    """uint8 (N, 1, n_mels, frames) log-mel images of audio files."""
    return waves_to_pixels([read_audio(path, spec.rate)[0] for path in paths], spec)


def fit_clip(wave: np.ndarray, spec: MelSpec) -> np.ndarray:
    """A waveform at spec.rate as the loader keeps it: its sound centred in the clip length, peak-normalised.
    Not idempotent (a fitted clip can move by a frame when fitted again): fit once."""
    return peak_normalise(fit_length(wave, spec.length))


def split_waves(config: DataConfig, split: str, spec: MelSpec) -> np.ndarray:
    """(N, length) the fitted clips of an audio dataset's split, in the order its images are loaded."""
    return np.stack([fit_clip(read_audio(path, spec.rate)[0], spec) for path in split_clips(config, split)])


def waves_to_pixels(waves: list[np.ndarray], spec: MelSpec) -> np.ndarray:
    """uint8 (N, 1, n_mels, frames) log-mel images of waveforms at spec.rate, each fitted to the clip length and
    peak-normalised first: what the loader makes of the same sound read from a file."""
    return fitted_to_pixels([fit_clip(wave, spec) for wave in waves], spec)


def fitted_to_pixels(waves: list[np.ndarray] | np.ndarray, spec: MelSpec) -> np.ndarray:
    """uint8 (N, 1, n_mels, frames) log-mel images of clips already fitted (fit_clip)."""
    out = []
    for start in range(0, len(waves), 256):
        out.append(log_mel_to_pixels(log_mel(torch.from_numpy(np.stack(waves[start:start + 256])), spec)))
    return np.concatenate(out) if out else np.zeros((0, 1, spec.n_mels, spec.frames), dtype=np.uint8)


def _fsdd_folder(config: DataConfig) -> Path:
    """The folder holding recordings/: the data root or root/fsdd; downloaded (the pinned commit) if allowed."""
    root = data_root(config)
    for candidate in (root, root / "fsdd"):
        if (candidate / "recordings").is_dir() and any((candidate / "recordings").glob("*.wav")):
            return candidate
    target = root / "fsdd"
    if not config.download:
        raise DataError(f"no FSDD recordings/ folder under {root} or {target}; set data.root to the folder that "
                        f"holds recordings/, or allow data.download")
    try:
        with urllib.request.urlopen(FSDD_URL, timeout=60) as response:
            archive = zipfile.ZipFile(io.BytesIO(response.read()))
    except OSError as error:
        raise DataError(f"FSDD is not under {root} and could not be downloaded from {FSDD_URL} ({error}); download "
                        f"it by hand and set data.root to the folder that holds recordings/") from None
    target.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=".recordings-", dir=target))  # renamed into place only when whole
    try:
        for member in archive.namelist():
            name = Path(member).name
            if "/recordings/" in member and _FSDD_NAME.match(name):
                (partial / name).write_bytes(archive.read(member))
        os.replace(partial, target / "recordings")
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return target


def fsdd_files(config: DataConfig) -> list[tuple[Path, int, str, int]]:
    """(path, digit, speaker, index) of every FSDD recording, sorted by file name."""
    folder = _fsdd_folder(config) / "recordings"
    rows = []
    for path in sorted(folder.iterdir()):
        match = _FSDD_NAME.match(path.name)
        if match:
            rows.append((path, int(match[1]), match[2], int(match[3])))
    if not rows:
        raise DataError(f"{folder} holds no {{digit}}_{{speaker}}_{{index}}.wav files; point data.root at FSDD")
    return rows


def _fsdd_source(config: DataConfig, split: str) -> dict[str, Any]:
    folder = _fsdd_folder(config)
    return {"root": str(folder.resolve()), "files_sha256": files_digest([row[0] for row in fsdd_files(config)], folder)}


def _decoded(config: DataConfig, source: dict[str, Any], paths: list[Path], labels: np.ndarray | None,
             classes: list[str]) -> Decoded:
    """Every clip's log-mel image, decoded once per data and spectrogram (aigckit's decode cache)."""
    spec = mel_spec(config.image_size)
    identity = {"name": config.name, "image_size": config.image_size, "clip_samples": CLIP_SAMPLES,
                "spectrogram": repr(spec), "db_range": [DB_MIN, DB_MAX], **source}
    return cached_decode(identity, lambda: Decoded(clips_to_pixels(paths, spec), labels, classes))


@register_dataset("fsdd", "Free Spoken Digit Dataset: 3,000 spoken digits (6 speakers, 8 kHz) as log-mel images "
                          "(image_size mel bands x frames); official test split", source=_fsdd_source)
def load_fsdd(config: DataConfig, split: str) -> ImageDataset:
    """FSDD for `split`: test = recordings 0-4 of each digit and speaker; train/val = the rest, val a share."""
    rows = fsdd_files(config)
    decoded = _decoded(config, _fsdd_source(config, split), [row[0] for row in rows],
                       np.array([row[1] for row in rows], dtype=np.int64), [str(d) for d in range(10)])
    data = ImageDataset(decoded.pixels, torch.from_numpy(decoded.labels), decoded.classes)
    return data.subset(torch.from_numpy(_fsdd_split(rows, config, split)))


def _fsdd_split(rows: list[tuple[Path, int, str, int]], config: DataConfig, split: str) -> np.ndarray:
    """Indices of `split` in FSDD's rows: test = recordings 0-4; train and val a fixed share of the rest."""
    is_test = np.array([row[3] < 5 for row in rows])
    if split == "test":
        return np.flatnonzero(is_test)
    rest = np.flatnonzero(~is_test)
    return rest[split_indices(len(rest), config.val_fraction, split).numpy()]


def split_clips(config: DataConfig, split: str) -> list[Path]:
    """The audio files of an audio dataset's `split`, in the order its images are loaded."""
    if config.name == "fsdd":
        rows = fsdd_files(config)
        return [rows[i][0] for i in _fsdd_split(rows, config, split)]
    if config.name == "audiofolder":
        files = _audio_files(config)[1]
        return [files[i] for i in _audiofolder_split(len(files), config, split)]
    raise DataError(f"{config.name} is not an audio dataset; use fsdd or audiofolder")


def _audiofolder_split(n: int, config: DataConfig, split: str) -> torch.Tensor:
    return split_indices(n, config.val_fraction, "train" if split == "train" else "val")


def _audio_files(config: DataConfig) -> tuple[Path, list[Path]]:
    if config.root is None:
        raise DataError("audiofolder reads data.root; set it to a folder of WAV/FLAC/OGG files")
    root = Path(config.root).expanduser()
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    if not files:
        raise DataError(f"no {'/'.join(AUDIO_SUFFIXES)} files under {root}; point data.root at a folder of audio")
    return root, files


def _audiofolder_source(config: DataConfig, split: str) -> dict[str, Any]:
    root, files = _audio_files(config)
    return {"root": str(root.resolve()), "files_sha256": files_digest(files, root)}


@register_dataset("audiofolder", "any folder of WAV/FLAC/OGG files as log-mel images (resampled to 8 kHz, 1.024 s); "
                                 "class = first sub-folder, if any", source=_audiofolder_source)
def load_audiofolder(config: DataConfig, split: str) -> ImageDataset:
    """Every audio file under data.root; train and val (and test, the same as val) are a fixed split of them."""
    root, files = _audio_files(config)
    classes = sorted({f.relative_to(root).parts[0] for f in files if len(f.relative_to(root).parts) > 1})
    labelled = bool(classes) and all(len(f.relative_to(root).parts) > 1 for f in files)
    labels = (np.array([classes.index(f.relative_to(root).parts[0]) for f in files], dtype=np.int64)
              if labelled else None)
    decoded = _decoded(config, _audiofolder_source(config, split), files, labels, classes if labelled else [])
    data = ImageDataset(decoded.pixels, None if decoded.labels is None else torch.from_numpy(decoded.labels),
                        decoded.classes)
    return data.subset(_audiofolder_split(len(data), config, split))
