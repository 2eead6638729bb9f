"""`aigckit speak RUN "4 0 7 2" --out number.wav`: a number spoken by a model trained on spoken digits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from .common import (PrecisionOption, check_output_file, check_precision, check_seed, err_console, require_at_least,
                     user_errors)

__all__ = ["speak_command"]


@user_errors
def speak_command(
    run_dir: Annotated[Path, typer.Argument(help="run directory of a class-conditional model trained on fsdd")],
    digits: Annotated[str, typer.Argument(help="the digits to say, e.g. \"4 0 7 2\"")],
    out: Annotated[Path, typer.Option(help="WAV file to write")] = Path("number.wav"),
    seed: Annotated[int, typer.Option(help="random seed (the same seed says the same number the same way)")] = 0,
    iterations: Annotated[int, typer.Option(help="Griffin-Lim iterations per word (griffin-lim, learned)")] = 64,
    vocoder: Annotated[str, typer.Option(help="griffin-lim (least-squares magnitude), learned (a mel inverter, "
                                              "then Griffin-Lim) or vocos (a Vocos-style vocoder: magnitude and "
                                              "phase), each trained once on the run's data, minutes, then cached")
                       ] = "griffin-lim",
    pause: Annotated[float, typer.Option(help="seconds of silence between words (-0.01: cross-fade them)")] = 0.12,
    precision: PrecisionOption = "auto",
) -> None:
    """Say a number digit by digit: one generated word per digit, back to sound by Griffin-Lim, joined with
    short pauses and fades; writes a 16-bit WAV and prints what it made."""
    from ..audio.io import write_wav
    from ..pipelines import load
    from ..pipelines.speech import audio_spec, run_vocoder, speak

    check_output_file(out, suffix=".wav")
    require_at_least(1, iterations=iterations)
    check_seed(seed)
    check_precision(precision)
    spec = audio_spec(run_dir)
    pipeline = load(run_dir, precision=precision)
    speech, info = speak(pipeline, spec, digits, seed=seed, iterations=iterations, pause=pause,
                         vocoder=run_vocoder(run_dir, vocoder))
    write_wav(out, speech, spec.rate)
    err_console.print(f"wrote {out}: {' '.join(map(str, info['digits']))} in {info['seconds']} s of audio")
    typer.echo(json.dumps({"out": str(out), **info}))
