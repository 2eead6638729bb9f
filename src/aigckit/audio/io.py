"""Audio files in and out (soundfile: WAV, FLAC, OGG), resampling (scipy's polyphase filter), and fitting a clip
to a fixed length around its sound."""

from __future__ import annotations

from math import gcd
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..errors import AigcError

__all__ = ["AUDIO_FORMATS", "read_audio", "write_wav", "encode_audio", "resample", "trim_silence", "fit_length",
           "peak_normalise"]

# response formats (OpenAI's names) -> (soundfile format, subtype, media type); pcm: raw 16-bit little-endian mono
AUDIO_FORMATS = {
    "wav": ("WAV", "PCM_16", "audio/wav"),
    "flac": ("FLAC", "PCM_16", "audio/flac"),
    "mp3": ("MP3", "MPEG_LAYER_III", "audio/mpeg"),
    "opus": ("OGG", "OPUS", "audio/ogg"),
    "pcm": ("RAW", "PCM_16", "audio/pcm"),
}


def read_audio(path: str | Path, rate: int | None = None) -> tuple[np.ndarray, int]:
    """A file's samples as float32 mono in [-1, 1] (channels averaged) and its sampling rate; resampled to `rate`
    when given."""
    import soundfile

    try:
        samples, file_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError) as error:
        raise AigcError(f"{path}: not an audio file soundfile can read ({error}); give a WAV, FLAC or OGG file") \
            from None
    mono = samples.mean(axis=1)
    if rate is not None and rate != file_rate:
        return resample(mono, file_rate, rate), rate
    return mono, file_rate


def write_wav(path: str | Path, samples: np.ndarray, rate: int) -> Path:
    """Write mono float samples in [-1, 1] as a 16-bit PCM WAV file (atomically)."""
    import soundfile

    path = Path(path)
    if path.suffix.lower() != ".wav":
        raise AigcError(f"{path}: audio is written as WAV; give a file name ending in .wav")
    with atomic_path(path) as tmp:
        soundfile.write(str(tmp), np.clip(np.asarray(samples, dtype=np.float32), -1, 1), rate, subtype="PCM_16",
                        format="WAV")
    return path


def encode_audio(samples: np.ndarray, rate: int, response_format: str) -> bytes:
    """Mono float samples in [-1, 1] encoded as one of AUDIO_FORMATS (libsndfile through soundfile)."""
    import io

    import soundfile

    if response_format not in AUDIO_FORMATS:
        raise AigcError(f"no audio format {response_format!r}; use one of {', '.join(AUDIO_FORMATS)}")
    kind, subtype, _ = AUDIO_FORMATS[response_format]
    buffer = io.BytesIO()
    soundfile.write(buffer, np.clip(np.asarray(samples, dtype=np.float32), -1, 1), rate, subtype=subtype, format=kind,
                    **({"endian": "LITTLE"} if kind == "RAW" else {}))
    return buffer.getvalue()


def resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Samples at `rate` resampled to `target` (polyphase, anti-aliased)."""
    from scipy.signal import resample_poly

    if rate == target:
        return samples
    common = gcd(rate, target)
    return resample_poly(samples, target // common, rate // common).astype(np.float32)


def peak_normalise(samples: np.ndarray, peak: float = 0.95) -> np.ndarray:
    """Scaled so that the largest magnitude is `peak` (silence is left as it is)."""
    top = float(np.abs(samples).max(initial=0.0))
    return samples if top == 0 else (samples * (peak / top)).astype(np.float32)


def trim_silence(samples: np.ndarray, *, trim_db: float = 40.0, frame: int = 128) -> np.ndarray:
    """The clip without its leading and trailing quiet: whole frames of `frame` samples from the first to the last
    whose energy is within `trim_db` of the loudest (silence and clips shorter than a frame are returned as
    they are)."""
    n_frames = len(samples) // frame
    if n_frames == 0:
        return samples
    energy = (samples[:n_frames * frame].reshape(n_frames, frame) ** 2).mean(axis=1)
    if energy.max() == 0:
        return samples
    loud = np.flatnonzero(energy >= energy.max() * 10 ** (-trim_db / 10))
    return samples[loud[0] * frame:(loud[-1] + 1) * frame]


def fit_length(samples: np.ndarray, length: int, *, trim_db: float = 40.0, frame: int = 128) -> np.ndarray:
    """The clip's sound (`trim_silence`) centred in `length` samples: padded with silence, or cut to its middle
    when longer."""
    samples = trim_silence(samples, trim_db=trim_db, frame=frame)
    if len(samples) >= length:
        start = (len(samples) - length) // 2
        return samples[start:start + length].astype(np.float32)
    out = np.zeros(length, dtype=np.float32)
    start = (length - len(samples)) // 2
    out[start:start + len(samples)] = samples
    return out
