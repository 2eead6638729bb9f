"""`aigckit eval` on a run trained on spoken digits: the generated clips scored as heard (Griffin-Lim and back),
beside the real test split and its resynthesis; a spectrogram grid, WAV files and players in the compare report."""

from __future__ import annotations

import dataclasses
import json

import soundfile

from aigckit.data import load_dataset
from aigckit.evaluation.audio import as_heard
from aigckit.evaluation.evaluate import evaluate_run, run_config
from aigckit.evaluation.extractors import load_or_train_evaluator
from aigckit.evaluation.report import compare_runs
from helpers import needs_fsdd


@needs_fsdd
def test_resynthesis_gives_back_the_log_mels_of_the_clip(speech_run):
    data = run_config(speech_run).data
    test = load_dataset(data, "test").images[::12][:24]  # 24 clips of different speakers and digits
    waves, heard = as_heard(test, data)
    assert waves.shape == (24, 8192) and heard.shape == test.shape
    error = (heard - test).abs().mean()
    other = (heard - test.roll(1, dims=0)).abs().mean()  # each clip against another
    assert error < 0.08 and error < other / 4, (error, other)


@needs_fsdd
def test_an_audio_run_is_scored_as_heard_with_its_ceilings(speech_run, tmp_path):
    data = run_config(speech_run).data
    evaluator = load_or_train_evaluator(dataclasses.replace(data, image_size=32), tmp_path, steps=40)  # cached
    metrics = evaluate_run(speech_run, n=20, steps=2, cache_dir=tmp_path, with_likelihood=False)
    audio = metrics["audio"]
    rows = ("generated_as_heard", "generated_spectrograms", "real_test", "real_test_griffin_lim", "real_train_1000")
    assert all(0 <= audio[row]["accuracy"]["overall"] <= 1 for row in rows)
    assert [audio[row]["n"] for row in rows] == [20, 20, 300, 300, 1000]
    assert abs(audio["real_test"]["accuracy"]["overall"] - evaluator.info["held_out_accuracy"]) < 1e-6
    assert set(audio["generated_as_heard"]["accuracy"]) == {"overall", *map(str, range(10))}  # per digit
    assert audio["real_test"]["frechet_distance"] == 0 and audio["real_train_1000"]["frechet_distance"] > 0
    assert audio["generated_spectrograms"]["classifier_score"] == metrics["classifier_score"]
    eval_dir = speech_run / "eval"
    assert json.loads((eval_dir / "metrics.json").read_text())["audio"]["wav_files"] == audio["wav_files"]
    assert len(audio["wav_files"]) == 20 and (eval_dir / "spectrograms.png").is_file()
    samples, rate = soundfile.read(eval_dir / "audio" / "7-1.wav")
    assert rate == 8000 and len(samples) == 8192

    page = compare_runs([speech_run], tmp_path / "report").read_text()
    assert page.count("<audio controls") == 20 and "a row per digit" in page
