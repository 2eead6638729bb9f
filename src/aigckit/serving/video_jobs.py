"""Video work of the server: one clip of the requested digits from a video diffusion run, written once as an MP4
(and its first frame as a PNG thumbnail) by content hash, and the job seen as OpenAI's video object."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from PIL import Image

from .. import __version__
from ..errors import AigcError
from ..provenance.marking import configured, png_of, save_marked_video
from ..video import as_frames, frame_image
from .batching import Stopped
from .catalog import VIDEO_FPS, ServedModel
from .jobs import Job

__all__ = ["VideoWork", "run_videos", "video_object"]

STATUS = {"queued": "queued", "running": "in_progress", "done": "completed", "failed": "failed",
          "cancelled": "failed"}  # a job's status as OpenAI's video status


@dataclass
class VideoWork:
    """A checked video request: the clip's digits (None: an unconditional model, or a first frame alone), its
    seed, the sampler options, the clip's length and frame size as the video object states them, and the frame a
    prediction model continues."""

    digits: list[int] | None
    seed: int
    options: dict[str, Any]
    seconds: str
    size: str
    watermark: bool = True  # False: the client opted out (recorded in the MP4's comment)
    first_frame: Image.Image | None = None  # input_reference: the clip's frame 0, continued

    @property
    def seeds(self) -> list[int]:
        """The clip's seed (the engine counts a job's rows by its seeds: one clip)."""
        return [self.seed]


def run_videos(served: ServedModel, jobs: list[Job], images: Any, videos: Any) -> None:
    """Sample each job's clip (one job at a time), store it as an MP4 (every frame watermarked unless the client
    opted out, what made it in the file's comment) and its first frame as a PNG, and finish the job with what made
    them."""
    pipeline = served.get()
    for job in jobs:
        if job.cancelled.is_set():
            raise Stopped
        work: VideoWork = job.params

        def progress(step: int, total: int, job: Job = job) -> None:
            if job.cancelled.is_set():
                raise Stopped  # stop within one sampler step
            job.progress(step, total)

        started = time.perf_counter()
        given = {"first_frame": work.first_frame} if work.first_frame is not None else {}
        clip = pipeline.sample(1, labels=work.digits, seed=work.seed, progress=progress, **work.options, **given)[0]
        seconds = time.perf_counter() - started
        made = {"model": served.id, "checkpoint_sha256": served.sha256, "digits": work.digits, "seed": work.seed,
                **work.options, "frames": clip.shape[0], "fps": VIDEO_FPS,
                "time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "aigckit_version": __version__}
        if "input_reference_sha256" in job.record:  # the frame the clip continues
            made["input_reference_sha256"] = job.record["input_reference_sha256"]
        try:
            key, _ = configured(work.watermark)  # signing credentials: PNG and JPEG only
            with tempfile.TemporaryDirectory(prefix="aigckit-video-") as folder:  # ffmpeg writes to a file
                path = Path(folder) / "clip.mp4"
                frames, made = save_marked_video(as_frames(clip), path, made, key=key, fps=VIDEO_FPS)
                made["sha256"] = videos.put(path.read_bytes())
        except AigcError as error:  # a watermark key that cannot be used, or ffmpeg failing
            job.fail(f"the server could not write the video: {error}")
            continue
        made["thumbnail_sha256"] = images.put(png_of(frame_image(frames[0])))  # the marked first frame
        made["generation_seconds"] = round(seconds, 3)
        job.finish({"aigckit": made})


def video_object(job: Job) -> dict[str, Any]:
    """A video job as OpenAI's video object (GET /v1/videos/{id}); `aigckit` says what made a completed one."""
    work: VideoWork = job.params
    status = STATUS[job.status]
    progress = 100 if status == "completed" else int(100 * job.step / job.total) if job.total else 0
    video: dict[str, Any] = {
        "id": job.id, "object": "video", "model": job.model_id, "status": status, "progress": progress,
        "created_at": int(job.created), "completed_at": int(job.finished) if job.status == "done" else None,
        "expires_at": None, "prompt": job.record.get("prompt", ""), "seconds": work.seconds, "size": work.size,
        "remixed_from_video_id": None, "error": None}
    if job.status == "done":
        video["aigckit"] = job.result["aigckit"]
    elif job.terminal:
        error = job.error or {"message": "the video was cancelled before it was made", "type": "cancelled"}
        video["error"] = {"code": error["type"], "message": error["message"]}
    return video
