"""Speech work of the server: the digits of a request spoken by a class-conditional model trained on spoken
digits (`aigckit.pipelines.speech.speak`), encoded in the format asked for."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field
from typing import Any

from .. import __version__
from ..audio.io import AUDIO_FORMATS, encode_audio
from ..pipelines.speech import audio_spec, speak
from .batching import Stopped
from .catalog import ServedModel
from .jobs import Job

__all__ = ["SpeechWork", "run_speech"]


@dataclass
class SpeechWork:
    """A checked speech request: the digits' text, the seed, the format, Griffin-Lim's iterations."""

    text: str
    seed: int
    response_format: str
    iterations: int
    vocoder: Any = None  # a trained vocoder (aigckit.audio.vocoder), or None: least squares and Griffin-Lim
    seeds: list[int] = field(default_factory=list)  # the engine counts a job's rows by its seeds: one per digit


def run_speech(served: ServedModel, jobs: list[Job]) -> None:
    """Speak each job's digits (one job at a time) and finish it with the encoded audio and what made it."""
    pipeline = served.get()
    spec = audio_spec(served.path)
    for job in jobs:
        if job.cancelled.is_set():
            raise Stopped
        work: SpeechWork = job.params
        started = time.perf_counter()
        samples, info = speak(pipeline, spec, work.text, seed=work.seed, iterations=work.iterations,
                              vocoder=work.vocoder)
        audio = encode_audio(samples, spec.rate, work.response_format)
        job.progress(1, 1)
        made: dict[str, Any] = {"model": served.id, "checkpoint_sha256": served.sha256, **info,
                                "response_format": work.response_format,
                                "generation_seconds": round(time.perf_counter() - started, 3),
                                "aigckit_version": __version__}
        job.finish({"audio_b64": base64.b64encode(audio).decode("ascii"),
                    "media_type": AUDIO_FORMATS[work.response_format][2], "aigckit": made})
