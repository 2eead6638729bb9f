"""`aigckit speak`: a number said by a (tiny, barely trained) conditional diffusion model on FSDD log-mels."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from aigckit.audio import read_audio
from aigckit.cli import app
from aigckit.errors import AigcError
from aigckit.pipelines.speech import join_words, parse_digits
from aigckit.training import Trainer
from helpers import needs_fsdd, tiny_config

@needs_fsdd
def test_speak_writes_one_word_per_digit(speech_run, tmp_path):
    out = tmp_path / "number.wav"
    result = CliRunner().invoke(app, ["speak", str(speech_run), "4 0 7", "--out", str(out), "--iterations", "8",
                                      "--pause", "0.2", "--precision", "fp32"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout.strip().splitlines()[-1])
    assert info["digits"] == [4, 0, 7] and info["rate"] == 8000
    samples, rate = read_audio(out)
    assert rate == 8000 and abs(len(samples) / rate - info["seconds"]) < 1e-3
    # two pauses of 0.2 s of silence, at most three words of 1.024 s
    assert 0.4 < len(samples) / rate <= 3 * 1.024 + 0.4
    again = tmp_path / "again.wav"
    CliRunner().invoke(app, ["speak", str(speech_run), "407", "--out", str(again), "--iterations", "8",
                             "--pause", "0.2", "--precision", "fp32"])
    assert np.array_equal(read_audio(again)[0], samples)  # same seed, same speech


@needs_fsdd
def test_speak_refuses_what_it_cannot_say(speech_run, tmp_path):
    runner = CliRunner()
    for args, message in ((["4 x 2"], "say digits"),
                          (["12", "--out", str(tmp_path / "n.mp3")], "ending in .wav"),
                          (["12", "--iterations", "0"], "--iterations")):
        result = runner.invoke(app, ["speak", str(speech_run), *args])
        assert result.exit_code != 0 and message in result.output, result.output
    digits_run = tmp_path / "digits"
    Trainer(tiny_config({"name": "diffusion", "conditional": True}, train={"max_steps": 1}), digits_run,
            show_progress=False).fit()
    result = runner.invoke(app, ["speak", str(digits_run), "1", "--out", str(tmp_path / "n.wav")])
    assert result.exit_code != 0 and "not on audio" in result.output


def test_join_words_pauses_and_fades():
    rate = 1000
    words = [np.ones(100, np.float32), np.ones(50, np.float32)]
    joined = join_words(words, rate, pause=0.03, fade=0.01)
    assert len(joined) == 100 + 30 + 50
    assert np.all(joined[100:130] == 0)  # the pause is silence
    assert joined[0] == 0 and joined[99] == 0 and joined[50] == 1  # faded in and out, full in the middle
    crossfaded = join_words(words, rate, pause=-0.01, fade=0.01)  # the fades overlap and sum to one
    assert len(crossfaded) == 140 and np.allclose(crossfaded[90:100], 1.0, atol=0.02)
    with pytest.raises(AigcError, match="overlap"):
        join_words(words, rate, pause=-0.02, fade=0.01)


def test_parse_digits():
    assert parse_digits("4 0 7 2", 10) == parse_digits("4072", 10) == parse_digits("4,0,7,2", 10) == [4, 0, 7, 2]
    for text in ("", "four", "4 a"):
        with pytest.raises(AigcError, match="say digits"):
            parse_digits(text, 10)
    with pytest.raises(AigcError, match="3 classes"):
        parse_digits("5", 3)
