"""The main job's spoken-digit stage (`aigckit demo`): a short FSDD diffusion run, its spectrogram grid and a
spoken number; skipped in one line where FSDD cannot be had."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from aigckit.audio import read_audio
from aigckit.cli.demo import _spoken_digits
from helpers import needs_fsdd

CONFIGS = Path(__file__).parents[2] / "configs"


@needs_fsdd
def test_the_demo_trains_on_spoken_digits_and_says_a_number(tmp_path, monkeypatch):
    monkeypatch.delenv("AIGCKIT_DATA", raising=False)  # the copy beside the repository is found
    written: dict[str, Path] = {}
    run_dir = _spoken_digits(CONFIGS, tmp_path, ["train.max_steps=2"], written)
    assert run_dir == tmp_path / "diffusion-fsdd" and (run_dir / "checkpoints").is_dir()
    grid = Image.open(tmp_path / "diffusion-fsdd-spectrograms.png")
    assert grid.size[1] > grid.size[0] * 0.9  # ten rows of ten 32x32 spectrograms
    samples, rate = read_audio(tmp_path / "diffusion-fsdd-4072.wav")
    assert rate == 8000 and 0.3 < len(samples) / rate < 4 * 1.024 + 0.5
    assert set(map(str, written.values())) == {str(tmp_path / "diffusion-fsdd-spectrograms.png"),
                                               str(tmp_path / "diffusion-fsdd-4072.wav")}


def test_without_fsdd_the_stage_is_skipped_with_the_reason(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AIGCKIT_DATA", str(tmp_path / "no-data"))
    written: dict[str, Path] = {}
    assert _spoken_digits(CONFIGS, tmp_path, ["train.max_steps=2", "data.download=false"], written) is None
    assert written == {} and "skipped the spoken digits" in capsys.readouterr().err
