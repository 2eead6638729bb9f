"""From a checked request to a queued job, and from a finished job to the answer: shared by the OpenAI routes
(which wait for the job) and /v1/jobs (which answers at once)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from fastapi import Request

from ..errors import AigcError
from ..pipelines import TextPipeline
from ..pipelines.inpaint import CLASSICAL_METHODS
from .batching import BatchingEngine
from .catalog import VIDEO_FPS, clip_seconds, frame_size
from .errors import APIError
from .image_jobs import (EditWork, GenerationWork, StylizeWork, draw_seeds, generation_key, open_upload, run_edits,
                         run_generations, run_stylize)
from .jobs import Job, QueueFull, TextChoice
from .schemas import (ChatCompletionRequest, CompletionRequest, ImageEditRequest, ImageGenerationRequest,
                      ImageStylizeRequest, SpeechRequest, VideoRequest)
from .speech_jobs import SpeechWork, run_speech
from .state import ServerState
from .text_jobs import chat_body, chat_prompt, completion_body, text_requests
from .video_jobs import VideoWork, run_videos

__all__ = ["submit_images", "submit_edit", "submit_stylize", "submit_speech", "submit_video", "submit_text",
           "await_job", "engine_for", "preload", "prepare_edit", "prepare_stylize", "decode_upload"]


async def preload(state: ServerState, model_id: str) -> None:
    """Load a lazy model in a worker thread, so the first request to it does not stall the event loop."""
    served = state.catalog.models.get(model_id)
    if served is not None and not served.loaded:
        await asyncio.to_thread(served.get)


CLASSICAL = "/classical"  # the engine of OpenCV's inpainting: a key no model id (a folder name) can be


def engine_for(state: ServerState, model_id: str) -> Any:
    """The engine of a model (or of the classical inpainting methods), started on first use."""
    if model_id in state.engines:
        return state.engines[model_id]
    settings = state.settings
    if model_id == CLASSICAL:
        engine = BatchingEngine("classical", partial(run_edits, None, store=state.images), key=lambda job: None,
                                rows=lambda job: 1, max_rows=1, max_queue=settings.max_queue, window_s=0.0)
    else:
        served = state.catalog.get(model_id)
        pipeline = served.get()
        if isinstance(pipeline, TextPipeline):
            from .text_engine import TextEngine

            engine = TextEngine(pipeline, max_batch=settings.max_batch_text, max_queue=settings.max_queue,
                                on_batch=state.metrics.batch_observer(model_id))
        else:
            engine = BatchingEngine(model_id, partial(_run_image_jobs, served, store=state.images,
                                                      videos=state.videos), key=_image_key,
                                    rows=lambda job: len(job.params.seeds), max_rows=settings.max_batch_images,
                                    max_queue=settings.max_queue, window_s=settings.batch_window_ms / 1000,
                                    on_batch=state.metrics.batch_observer(model_id))
    engine.start()
    state.engines[model_id] = engine
    return engine


def _image_key(job: Job) -> tuple | None:
    return ("generate", *generation_key(job)) if isinstance(job.params, GenerationWork) else None


def _run_image_jobs(served, jobs: list[Job], store, videos) -> None:
    if isinstance(jobs[0].params, GenerationWork):
        run_generations(served, jobs, store)
    elif isinstance(jobs[0].params, StylizeWork):
        run_stylize(served, jobs, store)
    elif isinstance(jobs[0].params, SpeechWork):
        run_speech(served, jobs)
    elif isinstance(jobs[0].params, VideoWork):
        run_videos(served, jobs, store, videos)
    else:
        run_edits(served, jobs, store)


def _check_image_counts(limits: Any, n: int, steps: int | None) -> None:
    """422 for more images or sampler steps than the server's limits allow."""
    if n > limits.max_n:
        raise APIError(422, f"n is {n}; this server makes at most {limits.max_n} images per request")
    if steps is not None and steps > limits.max_steps:
        raise APIError(422, f"steps is {steps}; this server runs at most {limits.max_steps} sampler steps")


def _queue(state: ServerState, job: Job, engine: Any) -> Job:
    try:
        engine.submit(job)
    except QueueFull as error:
        job.cancel()
        raise APIError(429, str(error), "rate_limit_error", {"Retry-After": str(error.retry_after)}) from None
    return job


def submit_images(state: ServerState, request: ImageGenerationRequest, key_name: str | None = None) -> Job:
    """Check an image-generation request against its model and queue it."""
    limits = state.settings.limits
    served = state.model(request.model, "image")
    pipeline = served.get()
    _check_image_counts(limits, request.n, request.steps)
    size = f"{pipeline.config.image_size}x{pipeline.config.image_size}"
    if request.size is not None and request.size != size:
        raise APIError(422, f"{request.model} makes {size} images; ask for size {size} or leave size out")
    options = {name: getattr(request, name) for name in ("sampler", "steps", "guidance", "eta")
               if getattr(request, name) is not None}
    pipeline.family.check_sample_options(options, pipeline.config.name)
    if pipeline.text_conditional:
        pipeline.check_prompt(request.prompt)  # missing or too long: one line, before the job is queued
    labels = pipeline.label_tensor(request.n, request.labels)
    if labels is None and pipeline.num_classes:  # as the families do: 0, 1, 2, ... for a conditional model
        labels = torch.arange(request.n) % pipeline.num_classes
    work = GenerationWork(request, labels.tolist() if labels is not None else None, draw_seeds(request.seed, request.n),
                          options)
    job = state.jobs.create("images.generations", served.id, work, key_name=key_name,
                            record={**request.model_dump(mode="json", exclude_none=True), "seed": work.seeds[0]})
    return _queue(state, job, engine_for(state, served.id))


async def prepare_edit(state: ServerState, request: ImageEditRequest, image: Callable[[], bytes],
                       mask: Callable[[], bytes]) -> EditWork:
    """Check an inpainting request against the limits and its model, then read its image and mask (callables that
    give their bytes: an unknown model is a 404 before any upload is decoded)."""
    options = {"steps": request.steps} if request.steps is not None else {}
    if request.model in CLASSICAL_METHODS:
        if options or request.label is not None:
            raise APIError(422, f"{request.model} uses no trained model, so steps and label cannot apply; drop them")
    else:
        await preload(state, request.model)
        family = state.model(request.model, "image").get().family
        if not family.supports("inpaint"):
            raise APIError(422, f"{request.model} cannot inpaint ({family.name} models have no inpainting method); "
                                f"use a diffusion or VAE model, or telea / navier-stokes")
        if "steps" in options and "steps" not in family.inpaint_options:
            raise APIError(422, f"steps does not apply to {request.model}'s inpainting; drop it")
    limits = state.settings.limits
    _check_image_counts(limits, request.n, request.steps)
    seeds = draw_seeds(request.seed, request.n)  # after the limit on n
    picture = open_upload(image(), "image", limits.max_image_side)
    hole = open_upload(mask(), "mask", limits.max_image_side)
    if request.model in CLASSICAL_METHODS:
        return EditWork(picture, hole, request.model, seeds, None, request.response_format,
                        watermark=request.watermark)
    return EditWork(picture, hole, None, seeds, request.label, request.response_format, options,
                    watermark=request.watermark)


async def prepare_stylize(state: ServerState, request: ImageStylizeRequest, content: Callable[[], bytes],
                          style: Callable[[], bytes | None]) -> StylizeWork:
    """Check a stylize request against its model and the limits, then read its images (callables that give their
    bytes: an unknown model is a 404 before any upload is decoded)."""
    await preload(state, request.model)
    pipeline = state.model(request.model, "image").get()
    if pipeline.family.name != "style":
        raise APIError(422, f"{request.model} is not a stylizer ({pipeline.family.name} models generate); serve a "
                            f"fast-style or adain run")
    limits = state.settings.limits
    if request.size > limits.max_image_side:
        raise APIError(422, f"size is {request.size}; this server makes images of at most {limits.max_image_side} "
                            f"a side")
    style_bytes = style()
    if pipeline.config.name == "fast-style" and (style_bytes is not None or request.alpha != 1.0):
        raise APIError(422, f"{request.model} is a fast-style network with its one learned style; drop style and "
                            f"alpha")
    if pipeline.config.name == "adain" and style_bytes is None:
        raise APIError(422, f"{request.model} is an AdaIN network: send the style image as the file `style`")
    options: dict[str, Any] = {"size": request.size, "preserve_color": request.preserve_color}
    if pipeline.config.name == "adain":
        options["alpha"] = request.alpha
    return StylizeWork(open_upload(content(), "image", limits.max_image_side),
                       open_upload(style_bytes, "style", limits.max_image_side) if style_bytes is not None else None,
                       options, request.response_format, request.watermark)


def submit_stylize(state: ServerState, model_id: str, work: StylizeWork, key_name: str | None = None) -> Job:
    """Queue a stylize request on the model's engine."""
    job = state.jobs.create("images.stylize", model_id, work, key_name=key_name,
                            record={"model": model_id, **work.options})
    return _queue(state, job, engine_for(state, model_id))


def submit_speech(state: ServerState, request: SpeechRequest, key_name: str | None = None) -> Job:
    """Check a speech request against its model and the limits, and queue it on the model's engine."""
    from ..audio.vocoder import load_vocoder
    from ..cache import default_cache_dir
    from ..evaluation.evaluate import run_config
    from ..pipelines.speech import audio_spec, parse_digits, trained_on_audio

    served = state.model(request.model, "image")
    pipeline = served.get()
    if not trained_on_audio(served.path):
        raise APIError(422, f"{request.model} was not trained on spoken audio, so it cannot speak; serve a run "
                            f"trained with configs/diffusion-fsdd.yaml")
    if not pipeline.num_classes:
        raise APIError(422, f"{request.model} is not class-conditional, so it cannot say a chosen digit")
    digits = parse_digits(request.input, pipeline.num_classes)  # AigcError: a 422 in one line
    if len(digits) > state.settings.limits.max_n:
        raise APIError(422, f"input has {len(digits)} digits; this server says at most {state.settings.limits.max_n} "
                            f"per request")
    if request.voice not in (None, "default"):
        raise APIError(422, f"voice {request.voice!r} is not one of {request.model}'s: it speaks in one voice, "
                            f"'default'")
    if request.speed not in (None, 1.0):
        raise APIError(422, f"speed {request.speed} is not supported (words are not time-stretched); use 1.0")
    vocoder = None
    if request.vocoder != "griffin-lim":
        vocoder = load_vocoder(run_config(served.path).data, audio_spec(served.path), default_cache_dir(),
                               name=request.vocoder)
        if vocoder is None:
            raise APIError(422, f"{request.model}'s data has no {request.vocoder} vocoder yet; train it once (a few "
                                f"minutes) with: aigckit speak RUN 0 --vocoder {request.vocoder}")
    work = SpeechWork(request.input, draw_seeds(request.seed, 1)[0], request.response_format, request.iterations,
                      vocoder, seeds=list(range(len(digits))))
    record = {**request.model_dump(mode="json", exclude_none=True), "seed": work.seed}
    job = state.jobs.create("audio.speech", served.id, work, key_name=key_name, record=record)
    return _queue(state, job, engine_for(state, served.id))


def submit_video(state: ServerState, request: VideoRequest, key_name: str | None = None,
                 first_frame: bytes | None = None) -> Job:
    """Check a video request against its model (digits, first frame, length, frame size, sampler options) and
    queue it."""
    from ..pipelines.speech import parse_digits

    served = state.model(request.model, "video")
    pipeline = served.get()
    if first_frame is not None and not pipeline.config.given_first_frame:
        raise APIError(422, f"{request.model} was not trained to continue a first frame (model.given_first_frame); "
                            f"send no input_reference")
    seconds, size = clip_seconds(pipeline), frame_size(pipeline)
    if request.seconds is not None and _number(request.seconds) != _number(seconds):
        raise APIError(422, f"seconds is {request.seconds!r}; {request.model} makes {seconds}-second clips "
                            f"({pipeline.frames} frames at {VIDEO_FPS} fps): ask for seconds {seconds} or leave it out")
    if request.size is not None and request.size != size:
        raise APIError(422, f"size is {request.size}; {request.model} makes {size} frames: ask for size {size} or "
                            f"leave it out")
    K = pipeline.labels_per_video
    if not K and request.prompt.strip():
        raise APIError(422, f"{request.model} is not class-conditional, so it cannot show chosen digits; send an "
                            f"empty prompt")
    digits = None
    if K and (request.prompt.strip() or first_frame is None):  # with a first frame, the digits may be left out
        try:
            digits = parse_digits(request.prompt, pipeline.num_classes)
        except AigcError:
            pass  # refused just below, saying what this model takes
        if digits is None or len(digits) != K:
            example = " ".join("3714"[i % 4] for i in range(K))
            raise APIError(422, f"prompt is {request.prompt!r}; {request.model} shows {K} digit{'s' * (K > 1)} per "
                                f"clip: give {K} (0 to {pipeline.num_classes - 1}), such as {example!r}")
    _check_image_counts(state.settings.limits, 1, request.steps)
    options = {name: getattr(request, name) for name in ("sampler", "steps", "guidance", "frame_lag")
               if getattr(request, name) is not None}
    pipeline.family.check_sample_options(options, pipeline.config.name, pipeline.model)  # 422 now, not in the job
    picture = None
    if first_frame is not None:
        picture = open_upload(first_frame, "input_reference", state.settings.limits.max_image_side)
    work = VideoWork(digits, draw_seeds(request.seed, 1)[0], options, seconds, size, request.watermark, picture)
    record = {**request.model_dump(mode="json", exclude_none=True, exclude={"input_reference"}), "seed": work.seed}
    if first_frame is not None:
        record["input_reference_sha256"] = hashlib.sha256(first_frame).hexdigest()
    job = state.jobs.create("videos", served.id, work, key_name=key_name, record=record)
    return _queue(state, job, engine_for(state, served.id))


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def decode_upload(text: str, what: str, limit: int) -> bytes:
    """The bytes of a base64 upload (a job's image or mask), refused in one line when not base64 or too large."""
    if len(text) > limit * 4 // 3 + 4:
        raise APIError(413, f"the {what} is larger than this server's limit of {limit} bytes")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise APIError(422, f"the {what} is not base64; send the file's bytes base64-encoded") from None


def submit_edit(state: ServerState, model_id: str, work: EditWork, key_name: str | None = None) -> Job:
    """Queue an inpainting request: a served model's method, or a classical one (model 'telea'/'navier-stokes')."""
    record = {"model": model_id, "method": work.method, "n": len(work.seeds), "seed": work.seeds[0],
              "label": work.label, **work.options}
    job = state.jobs.create("images.edits", model_id, work, key_name=key_name, record=record)
    return _queue(state, job, engine_for(state, CLASSICAL if work.method else model_id))


def submit_text(state: ServerState, request: CompletionRequest | ChatCompletionRequest,
                key_name: str | None = None) -> Job:
    """Check a completion or chat request and queue its n choices (per prompt) on the model's text engine."""
    limits = state.settings.limits
    chat = isinstance(request, ChatCompletionRequest)
    served = state.model(request.model, "text")
    pipeline = served.get()
    prompts = [chat_prompt(pipeline, request)] if chat else (
        [request.prompt] if isinstance(request.prompt, str) else list(request.prompt))
    if not prompts:
        raise APIError(422, "prompt is an empty list; give at least one prompt")
    if any(len(p) > limits.max_prompt_chars for p in prompts):
        raise APIError(413, f"a prompt is longer than this server's limit of {limits.max_prompt_chars} characters")
    if request.n * len(prompts) > limits.max_n:
        raise APIError(422, f"{request.n * len(prompts)} choices asked; this server makes at most {limits.max_n}")
    max_tokens = (getattr(request, "max_completion_tokens", None) or request.max_tokens
                  or (limits.max_tokens if chat else 16))  # OpenAI's completions default to 16 tokens
    if max_tokens > limits.max_tokens:
        raise APIError(422, f"max_tokens is {max_tokens}; this server generates at most {limits.max_tokens}")
    requests = text_requests(pipeline, request, prompts, max_tokens)
    record = {**request.model_dump(mode="json", exclude_none=True), "seed": requests[0].seed}
    job = state.jobs.create("chat.completions" if chat else "completions", served.id, request, key_name=key_name,
                            record=record)
    job.num_choices = len(requests)
    job.compose = chat_body if chat else completion_body
    from .text_engine import QueueFull as TextQueueFull

    engine = engine_for(state, served.id)
    try:
        for index, text_request in enumerate(requests):
            engine.submit(text_request, TextChoice(job, index))
    except TextQueueFull as error:
        job.cancel()
        raise APIError(429, str(error), "rate_limit_error", {"Retry-After": str(error.retry_after)}) from None
    except AigcError:  # an option the model cannot serve
        job.cancel()
        raise
    return job


async def await_job(request: Request, job: Job) -> dict:
    """Wait for `job`; cancel it if the client goes away; its result, or its error as an APIError."""
    waiter = asyncio.ensure_future(job.wait())
    try:
        while not waiter.done():
            await asyncio.wait({waiter}, timeout=0.25)
            if not waiter.done() and await request.is_disconnected():
                job.cancel()
                raise APIError(499, "the client closed the connection", "client_closed")
    finally:
        waiter.cancel()
    if job.status == "done":
        return job.result
    error = job.error or {"message": "the request was cancelled", "type": "cancelled", "code": 409}
    raise APIError(error["code"], error["message"], error["type"])
