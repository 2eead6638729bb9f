"""Image work of the server: batched generation and inpainting edits, each image written once as a PNG that
carries its provenance, and the OpenAI-shaped response body."""

from __future__ import annotations

import base64
import io
import logging
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import torch
from PIL import Image

from .. import __version__
from ..errors import AigcError
from ..imaging import to_pil
from ..layers.noise import BatchGenerators
from ..pipelines.inpaint import CLASSICAL_METHODS, inpaint
from ..provenance.marking import configured, marked_png, png_of
from .batching import Stopped
from .catalog import ServedModel
from .jobs import Job
from .schemas import ImageGenerationRequest

__all__ = ["GenerationWork", "EditWork", "StylizeWork", "generation_key", "run_generations", "run_edits",
           "run_stylize", "publish_images"]

log = logging.getLogger("aigckit.serving")
PUBLISHERS = ThreadPoolExecutor(4, thread_name_prefix="publish")  # shared by every image engine of the process


@dataclass
class GenerationWork:
    """A checked image-generation request: the labels of its n images, a seed per image, the sampler options."""

    request: ImageGenerationRequest
    labels: list[int] | None
    seeds: list[int]
    options: dict[str, Any]

    @property
    def n(self) -> int:
        """Images in this request."""
        return len(self.seeds)


@dataclass
class EditWork:
    """A checked inpainting request: the image and mask, the method, a seed per image, the options."""

    image: Image.Image
    mask: Image.Image
    method: str | None  # None: the served model's own method
    seeds: list[int]
    label: int | None
    response_format: str
    options: dict[str, Any] = field(default_factory=dict)
    watermark: bool = True  # False: the client opted out (recorded in each PNG)


def draw_seeds(seed: int | None, n: int) -> list[int]:
    """Seeds of n images: seed, seed + 1, ... so that image i is reproduced alone with seed + i and n = 1; a seed is
    drawn when none was given, and returned, so that every image can be made again."""
    first = secrets.randbits(52) if seed is None else seed
    return [first + i for i in range(n)]


def generation_key(job: Job) -> tuple:
    """Requests with the same sampler options share one sampler batch."""
    return tuple(sorted(job.params.options.items()))


def run_generations(served: ServedModel, jobs: list[Job], store: Any) -> None:
    """Sample every job's images in one batch, each image from its own seed, and finish each job."""
    pipeline = served.get()
    works: list[GenerationWork] = [job.params for job in jobs]
    seeds = [seed for work in works for seed in work.seeds]
    labels = None
    if pipeline.num_classes:
        labels = [label for work in works for label in work.labels]
    generator = BatchGenerators([(torch.Generator().manual_seed(seed), 1) for seed in seeds])
    options = dict(works[0].options)
    if pipeline.text_conditional:  # each request's caption for each of its images
        options["prompt"] = [work.request.prompt for work in works for _ in range(work.n)]

    def progress(step: int, total: int) -> None:
        if all(job.cancelled.is_set() for job in jobs):
            raise Stopped  # nobody waits for this batch any more: stop within one sampler step
        for job in jobs:
            job.progress(step, total)

    if "progress" in pipeline.family.sample_options:
        options["progress"] = progress
    started = time.perf_counter()
    images = pipeline.sample(len(seeds), labels=labels, generator=generator, **options)
    seconds = time.perf_counter() - started
    if "progress" not in options:
        progress(1, 1)  # a GAN or VAE samples in one step
    start = 0
    for job, work in zip(jobs, works):
        part = images[start:start + work.n]
        start += work.n
        metadata = [_metadata(served, work.options, seed, (work.labels or [None] * work.n)[i], work.request.prompt,
                              seconds / len(seeds)) for i, seed in enumerate(work.seeds)]
        guard = None
        if work.request.guard:
            part, metadata, guard = _withhold_near_copies(served, part, metadata)
        # PNG encoding and the fsynced writes run beside the engine, which goes on to its next batch
        PUBLISHERS.submit(_finish, job, to_pil(part) if len(part) else [], metadata, work.request.response_format,
                          store, work.request.watermark, guard)


def _withhold_near_copies(served: ServedModel, images: torch.Tensor,
                          metadata: list[dict]) -> tuple[torch.Tensor, list[dict], dict]:
    """The images that are no near-copy of a training image, their metadata, and what the guard did."""
    from ..provenance.guard import guard_for

    pipeline = served.get()
    guard = guard_for(pipeline.checkpoint, pipeline.config.image_size)
    copies, _ = guard.near_copies(images)
    kept = [i for i in range(len(images)) if not copies[i]]
    report = {"checked": len(images), "withheld": len(images) - len(kept), "threshold": guard.threshold,
              "withheld_seeds": [meta["seed"] for meta, copy in zip(metadata, copies.tolist()) if copy]}
    return images[kept], [metadata[i] for i in kept], report


def _finish(job: Job, images: list[Image.Image], metadata: list[dict], response_format: str, store: Any,
            watermark: bool = True, guard: dict | None = None) -> None:
    try:
        body = publish_images(images, metadata, response_format, store, watermark=watermark)
        if guard is not None:
            body["aigckit_guard"] = guard
        job.finish(body)
    except AigcError as error:  # a watermark key or signing credentials that cannot be used
        log.error("job %s: %s", job.id, error)
        job.fail(f"the server could not mark the images: {error}")
    except Exception:
        log.exception("writing the images of job %s failed", job.id)
        job.fail("the server could not store the images; the server log has the details")


def run_edits(served: ServedModel | None, jobs: list[Job], store: Any) -> None:
    """Inpaint (one job at a time): the model's method, or a classical one without a model."""
    for job in jobs:
        work: EditWork = job.params
        pipeline = served.get() if served is not None else None
        results, metadata = [], []
        for i, seed in enumerate(work.seeds):
            if job.cancelled.is_set():
                raise Stopped
            started = time.perf_counter()
            results.append(inpaint(work.image, work.mask, method=work.method, pipeline=pipeline,
                                   seed=None if work.method in CLASSICAL_METHODS else seed, label=work.label,
                                   **work.options))
            job.progress(i + 1, len(work.seeds))
            method = work.method or pipeline.family.inpaint_method
            metadata.append(_metadata(served, {"method": method, **work.options}, seed, work.label, None,
                                      time.perf_counter() - started))
        job.finish(publish_images(results, metadata, work.response_format, store, watermark=work.watermark,
                                  edited_from=png_of(work.image)))


@dataclass
class StylizeWork:
    """A checked stylize request: the content image, the style image (adain) and the options."""

    content: Image.Image
    style: Image.Image | None
    options: dict[str, Any]  # size, alpha (adain), preserve_color
    response_format: str
    watermark: bool = True
    seeds: list[int] = field(default_factory=lambda: [0])  # one image, no noise; the engine counts rows by seeds


def run_stylize(served: ServedModel, jobs: list[Job], store: Any) -> None:
    """Stylise (one job at a time) with the served network."""
    from ..pipelines.style import stylize_with_pipeline

    for job in jobs:
        work: StylizeWork = job.params
        started = time.perf_counter()
        result = stylize_with_pipeline(served.get(), work.content, work.style, **work.options)
        job.progress(1, 1)
        options = {"method": result.info["method"], "features": result.info["features"], **work.options}
        metadata = _metadata(served, options, 0, None, None, time.perf_counter() - started)
        job.finish(publish_images([result.image], [metadata], work.response_format, store,
                                  watermark=work.watermark, edited_from=png_of(work.content)))


def _metadata(served: ServedModel | None, options: dict, seed: int, label: int | None, prompt: str | None,
              seconds: float) -> dict[str, Any]:
    return {"model": served.id if served else None, "checkpoint_sha256": served.sha256 if served else None,
            "seed": seed, "label": label, "prompt": prompt, **{k: v for k, v in options.items() if k != "progress"},
            "seconds": round(seconds, 4), "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "aigckit_version": __version__}


def publish_images(images: list[Image.Image], metadata: list[dict], response_format: str, store: Any, *,
                   watermark: bool = True, edited_from: bytes | None = None) -> dict:
    """Write each image once (by content hash; watermarked unless `watermark` is False, its provenance in PNG text
    chunks, signed when credentials are configured) and build the response body; `edited_from`: an edit's input."""
    key, credentials = configured(watermark)
    data = []
    for image, meta in zip(images, metadata):
        png, fields = marked_png(image, meta, key=key, credentials=credentials, edited_from=edited_from)
        sha = store.put(png)
        item: dict[str, Any] = {"revised_prompt": None, "aigckit": {**fields, "sha256": sha}}
        if response_format == "url":
            item["url"] = f"/v1/files/{sha}.png"
        else:
            item["b64_json"] = base64.b64encode(png).decode("ascii")
        data.append(item)
    return {"created": int(time.time()), "data": data}


def open_upload(raw: bytes, what: str, max_side: int) -> Image.Image:
    """An uploaded image, decoded and size-checked; AigcError in one line if it is no image or too large."""
    try:
        image = Image.open(io.BytesIO(raw))
        if max(image.size) > max_side:
            raise AigcError(f"the {what} is {image.size[0]}x{image.size[1]} pixels; the server takes at most "
                            f"{max_side} a side")
        image.load()
    except AigcError:
        raise
    except Exception:
        raise AigcError(f"the {what} is not an image the server can read (PNG, JPEG, WebP, ...)") from None
    return image
