"""Sound: reading and writing audio files, fitting clips to a fixed length, and the log-mel spectrogram that the
image families model as a one-channel image (and back to a waveform)."""

from .io import fit_length, peak_normalise, read_audio, resample, trim_silence, write_wav
from .mel import MelSpec, griffin_lim, log_mel, log_mel_to_pixels, mel_to_waveform, pixels_to_log_mel

__all__ = ["read_audio", "write_wav", "resample", "trim_silence", "fit_length", "peak_normalise", "MelSpec", "log_mel",
           "log_mel_to_pixels", "pixels_to_log_mel", "griffin_lim", "mel_to_waveform"]
