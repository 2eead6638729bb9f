"""The audio module on real recordings (FSDD from ../shared/data) and on files the tests write."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from aigckit.audio import fit_length, peak_normalise, read_audio, resample, write_wav
from aigckit.audio.mel import (DB_MAX, DB_MIN, MelSpec, griffin_lim, log_mel, log_mel_to_pixels, mel_to_waveform,
                               log_spectral_distance, pixels_to_log_mel, power_spectrogram, spectral_convergence)
from aigckit.config import DataConfig
from aigckit.data import load_dataset
from aigckit.data.audio import fsdd_files, mel_spec
from aigckit.errors import AigcError, DataError
from helpers import FSDD, needs_fsdd

SPEC = MelSpec()


def clip(name: str = "3_jackson_7.wav") -> torch.Tensor:
    wave, rate = read_audio(FSDD / "recordings" / name)
    assert rate == 8000
    return torch.from_numpy(peak_normalise(fit_length(wave, SPEC.length)))[None]


@needs_fsdd
def test_log_mel_equals_transformers_reference():
    # transformers' audio_utils.spectrogram: an independent numpy STFT, the same window, hop, filters and dB
    from transformers.audio_utils import spectrogram

    wave = clip()
    ours = log_mel(wave, SPEC)[0].numpy()
    reference = spectrogram(wave[0].double().numpy(), SPEC.window().double().numpy(), frame_length=SPEC.n_fft,
                            hop_length=SPEC.hop, power=2.0, center=True, pad_mode="reflect",
                            mel_filters=SPEC.filters().double().numpy(), mel_floor=1e-10, log_mel="dB",
                            dtype=np.float64)[:, :SPEC.frames]
    assert ours.shape == (64, 64)
    loud = reference > -60  # where float32 rounding is far below a hundredth of a dB
    assert np.abs(ours - reference)[loud].max() < 1e-3
    assert np.abs(ours - reference).max() < 0.05


@needs_fsdd
def test_griffin_lim_recovers_a_consistent_phase():
    magnitude = power_spectrogram(clip(), SPEC).sqrt()
    few, many = (spectral_convergence(griffin_lim(magnitude, SPEC, iterations=n), magnitude, SPEC).item()
                 for n in (4, 64))
    assert many < 0.06 and many < few / 4
    # the fast variant's momentum is what makes 16 iterations enough (Perraudin et al. 2013)
    plain, fast = (spectral_convergence(griffin_lim(magnitude, SPEC, iterations=16, momentum=m), magnitude,
                                        SPEC).item() for m in (0.0, 0.99))
    assert fast < 0.7 * plain


@needs_fsdd
def test_mel_to_waveform_keeps_the_log_mel():
    db = log_mel(clip(), SPEC)
    again = log_mel(mel_to_waveform(db, SPEC), SPEC)
    loud = db > db.max() - 40
    assert (again - db)[loud].abs().median() < 2.0  # dB: the sound's mel envelope survives the round trip


def test_pixels_hold_the_range_to_half_a_level():
    db = torch.linspace(DB_MIN, DB_MAX, 64 * 64).reshape(1, 64, 64)
    back = pixels_to_log_mel(log_mel_to_pixels(db))
    assert (back - db).abs().max() <= (DB_MAX - DB_MIN) / 255 / 2 + 1e-4
    pixels = log_mel_to_pixels(torch.full((1, 64, 64), DB_MIN).index_fill(1, torch.tensor([0]), DB_MAX))
    assert pixels.shape == (1, 1, 64, 64) and (pixels[0, 0, -1] == 255).all() and (pixels[0, 0, 0] == 0).all()


def test_fit_length_centres_the_sound_and_cuts_long_clips():
    tone = np.sin(2 * np.pi * 440 * np.arange(2000) / 8000).astype(np.float32)
    padded = np.concatenate([np.zeros(3000, np.float32), tone, np.zeros(500, np.float32)])
    out = fit_length(padded, 8192)
    loud = np.flatnonzero(np.abs(out) > 0.5)
    assert len(out) == 8192 and abs((loud[0] + loud[-1]) / 2 - 4096) < 70
    long = np.arange(20000, dtype=np.float32) / 20000 + 0.5
    kept = 156 * 128  # trimming works in whole 128-sample frames; all are loud, so it keeps 156 of them
    start = (kept - 8192) // 2
    assert np.array_equal(fit_length(long, 8192), long[start:start + 8192])


def test_wav_round_trip_and_resampling(tmp_path):
    rate = 16000
    tone = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(rate) / rate).astype(np.float32)
    write_wav(tmp_path / "tone.wav", tone, rate)
    read, read_rate = read_audio(tmp_path / "tone.wav")
    assert read_rate == rate and np.abs(read - tone).max() <= 1 / 32768 + 1e-7
    down, down_rate = read_audio(tmp_path / "tone.wav", 8000)
    assert down_rate == 8000 and len(down) == 8000
    spectrum = np.abs(np.fft.rfft(down))
    assert np.argmax(spectrum) == 1000  # 1 Hz bins: the tone is still at 1 kHz
    assert np.allclose(resample(tone, rate, rate), tone)
    (tmp_path / "junk.wav").write_bytes(b"not audio")
    with pytest.raises(AigcError) as error:
        read_audio(tmp_path / "junk.wav")
    assert "\n" not in str(error.value) and "WAV" in str(error.value)
    with pytest.raises(AigcError, match="ending in .wav"):
        write_wav(tmp_path / "tone.mp3", tone, rate)


@needs_fsdd
def test_fsdd_official_split_and_labels():
    config = DataConfig(name="fsdd", root=str(FSDD), image_size=64, download=False)
    rows = fsdd_files(config)
    assert len(rows) == 3000 and len({row[2] for row in rows}) == 6  # six speakers
    test = load_dataset(config, "test")
    assert len(test) == 300 and test.labels.bincount().tolist() == [30] * 10
    assert test.model_facts == {"image_size": 64, "channels": 1, "num_classes": 10}
    train, val = load_dataset(config, "train"), load_dataset(config, "val")
    assert len(train) + len(val) == 2700
    # the stored image is the clip's log-mel: the first test clip decoded back matches its own spectrogram
    first = sorted(row for row in rows if row[3] < 5)[0][0]
    wave = torch.from_numpy(peak_normalise(fit_length(read_audio(first)[0], SPEC.length)))[None]
    expected = log_mel(wave, SPEC).clamp(DB_MIN, DB_MAX)
    assert (pixels_to_log_mel(test.pixels[:1]) - expected).abs().max() <= (DB_MAX - DB_MIN) / 255 / 2 + 1e-3


def test_audiofolder_reads_written_files_with_class_folders(tmp_path):
    rate = 16000
    for label, freq in (("high", 2000), ("low", 300)):
        for i in range(5):
            tone = 0.3 * np.sin(2 * np.pi * freq * (1 + 0.01 * i) * np.arange(rate // 2) / rate)
            write_wav(tmp_path / label / f"{i}.wav", tone, rate)
    config = DataConfig(name="audiofolder", root=str(tmp_path), image_size=32, val_fraction=0.2, download=False)
    train, val = load_dataset(config, "train"), load_dataset(config, "val")
    assert (len(train), len(val)) == (8, 2) and train.num_classes == 2
    # the high tones' energy sits in higher mel rows (nearer the top of the image) than the low tones'
    images = torch.cat([train.images, val.images])[:, 0]
    labels = torch.cat([train.labels, val.labels])
    peak_row = images.mean(dim=2).argmax(dim=1)
    assert (peak_row[labels == 0] < peak_row[labels == 1].min()).all()


def test_audio_sizes_are_checked():
    assert mel_spec(32).hop == 256 and mel_spec(128).n_mels == 128
    with pytest.raises(DataError, match="image_size"):
        mel_spec(48)


@needs_fsdd
def test_a_relative_root_is_the_same_data_as_its_absolute_path(monkeypatch):
    from aigckit.data.base import data_fingerprint

    monkeypatch.chdir(FSDD.parent)
    relative = DataConfig(name="fsdd", root="fsdd", image_size=32, download=False)
    absolute = DataConfig(name="fsdd", root=str(FSDD.resolve()), image_size=32, download=False)
    assert data_fingerprint(relative, "train", "test") == data_fingerprint(absolute, "train", "test")


@needs_fsdd
def test_log_spectral_distance_is_zero_for_the_same_sound_and_6_db_for_twice_the_amplitude():
    wave = clip()
    assert log_spectral_distance(wave, wave, SPEC).item() == 0
    loud = 0.3 * torch.randn(1, SPEC.length, generator=torch.Generator().manual_seed(0))  # every bin above the floor
    assert log_spectral_distance(2 * loud, loud, SPEC).item() == pytest.approx(20 * np.log10(2), abs=0.05)
