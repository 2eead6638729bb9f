"""`aigckit sample RUN_DIR --n 64 --out grid.png`: images from a trained run; clips from a video run
(`--out clips.gif`, `.mp4`, or a `.png` frame grid)."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from ..errors import AigcError
from .common import (PrecisionOption, check_output_file, check_precision, check_seed, err_console, open_image,
                     require_at_least, require_image_model, say_precision, user_errors)

if TYPE_CHECKING:
    from torch import Tensor

    from ..pipelines import ImagePipeline

__all__ = ["sample_command", "withhold_near_copies"]


def parse_labels(text: str | None) -> list[int] | None:
    """'0,1,2' -> [0, 1, 2]; None stays None."""
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise AigcError(f"--labels takes comma-separated class numbers such as 0,1,2, got {text!r}") from None


@user_errors
def sample_command(
    run_dir: Annotated[Path, typer.Argument(help="run directory or checkpoint directory")],
    n: Annotated[int, typer.Option("--n", help="number of images")] = 64,
    labels: Annotated[Optional[str], typer.Option(help="class labels, one or n, comma-separated; video: a clip's K "
                                                       "digits (for every clip) or n * K")] = None,
    prompt: Annotated[Optional[list[str]], typer.Option(help="text-conditional diffusion: the caption, once for all "
                                                       "images or n times (one per image)")] = None,
    seed: Annotated[Optional[int], typer.Option(help="random seed")] = None,
    out: Annotated[Path, typer.Option(help="PNG grid to write; video runs also .gif or .mp4")] = Path("samples.png"),
    nrow: Annotated[int, typer.Option(help="images per grid row")] = 8,
    sampler: Annotated[Optional[str], typer.Option(help="diffusion: ddpm, ddim or dpm-solver++")] = None,
    steps: Annotated[Optional[int], typer.Option(help="diffusion: denoising steps, 1..num_train_steps")] = None,
    guidance: Annotated[Optional[float], typer.Option(help="diffusion: classifier-free guidance >= 0")] = None,
    eta: Annotated[Optional[float], typer.Option(help="diffusion, ddim: noise in [0, 1]")] = None,
    precision: PrecisionOption = "auto",
    watermark: Annotated[bool, typer.Option("--watermark/--no-watermark", help="embed the invisible watermark "
                                            "(the opt-out is recorded in the PNG)")] = True,
    guard: Annotated[bool, typer.Option("--guard", help="withhold near-copies of training images (the rule of "
                                        "aigckit eval's memorisation)")] = False,
    first_frame: Annotated[Optional[Path], typer.Option(help="video prediction: an image every clip starts from "
                                                        "and continues (a run trained with "
                                                        "model.given_first_frame)")] = None,
    frame_lag: Annotated[Optional[int], typer.Option(help="video, ddim: each frame starts denoising this many "
                                                     "steps after the one before (runs trained with "
                                                     "model.independent_frame_noise)")] = None,
) -> None:
    """Sample n images from a trained run and save them as a grid, watermarked, with its provenance."""
    from ..atomic import atomic_write_bytes
    from ..checkpoint import checkpoint_sha256
    from ..imaging import grid_image
    from ..pipelines import load
    from ..provenance.marking import configured, marked_png

    from ..pipelines import VideoPipeline

    require_at_least(1, n=n, nrow=nrow)
    check_seed(seed)
    label_list = parse_labels(labels)
    animated = out.suffix.lower() in (".gif", ".mp4")
    check_output_file(out, suffix=out.suffix.lower() if animated else ".png")
    check_precision(precision)
    key, credentials = configured(watermark)  # a key or certificate problem is reported before any sampling
    pipeline = load(run_dir, precision=precision)
    require_image_model(pipeline, run_dir, "sample")
    video = isinstance(pipeline, VideoPipeline)
    if animated and not video:
        raise AigcError(f"--out {out}: {run_dir} holds an image model, written as a PNG grid; give a name ending "
                        f"in .png (GIF and MP4 are for video runs)")
    if video and guard:
        raise AigcError("--guard compares images with training images and does not read clips; drop --guard")
    if first_frame is not None and not video:
        raise AigcError(f"--first-frame starts clips, and {run_dir} holds an image model; drop it or give a video run")
    frame_image = open_image(first_frame, "--first-frame") if first_frame is not None else None
    say_precision(pipeline)
    seed = secrets.randbits(63) if seed is None else seed  # drawn here so that it is recorded and marked
    options = {"sampler": sampler, "steps": steps, "guidance": guidance, "eta": eta, "frame_lag": frame_lag,
               "prompt": prompt[0] if prompt and len(prompt) == 1 else prompt}
    given = {"first_frame": frame_image} if frame_image is not None else {}
    images = pipeline.sample(n, labels=label_list, seed=seed,
                             **{k: v for k, v in options.items() if v is not None}, **given)
    metadata = {"model": Path(run_dir).resolve().name, "architecture": pipeline.config.name,
                "checkpoint_sha256": checkpoint_sha256(Path(pipeline.checkpoint)), "seed": seed, "n": n,
                "labels": labels, **options}
    if first_frame is not None:
        metadata["first_frame"] = first_frame.name
    if isinstance(options["prompt"], list):  # one caption per image: a JSON list in the PNG's text
        metadata["prompt"] = json.dumps(options["prompt"])
    if video:
        _write_clips(pipeline, images, out, nrow, key, credentials, metadata)
        return
    if guard:
        images, metadata["guard_withheld"] = withhold_near_copies(images, pipeline)
    upscale = max(1, 64 // images.shape[-1])  # small images enlarged for viewing, as ImagePipeline.save_grid does
    data, _ = marked_png(grid_image(images, nrow, upscale), metadata, key=key, credentials=credentials)
    atomic_write_bytes(out, data)
    marks = ("watermarked" if key else "not watermarked") + (", signed" if credentials else "")
    err_console.print(f"wrote {out} ({len(images)} images from {pipeline.checkpoint}, seed {seed}; {marks}; "
                      f"{pipeline.precision.describe()})")


def _write_clips(pipeline, videos: Tensor, out: Path, nrow: int, key, credentials, metadata: dict) -> None:
    """Clips as an animated GIF/MP4 (tiled `nrow` a row, every frame watermarked, the provenance in the file's
    comment) or a PNG with a row of frames per clip (watermarked and signed as image grids are)."""
    from ..atomic import atomic_write_bytes
    from ..imaging import grid_image
    from ..provenance.marking import marked_png, save_marked_video
    from ..video import DEFAULT_FPS, as_frames, video_grid

    upscale = max(1, 64 // videos.shape[-1])
    if out.suffix.lower() == ".png":
        data, _ = marked_png(grid_image(videos.flatten(0, 1), videos.shape[1], upscale), metadata, key=key,
                             credentials=credentials)
        atomic_write_bytes(out, data)
        what = "a frame grid, " + ("watermarked" if key else "not watermarked") + (", signed" if credentials else "")
    else:
        frames = as_frames(video_grid(videos, nrow=min(nrow, len(videos))), upscale=upscale)
        save_marked_video(frames, out, metadata, key=key, fps=DEFAULT_FPS)
        what = ("every frame watermarked" if key else "not watermarked") + (
            "; not signed: content credentials are signed into images only" if credentials else "")
    err_console.print(f"wrote {out} ({len(videos)} clips of {videos.shape[1]} frames from {pipeline.checkpoint}, "
                      f"seed {metadata['seed']}; {what}; {pipeline.precision.describe()})")


def withhold_near_copies(images: Tensor, pipeline: ImagePipeline) -> tuple[Tensor, int]:
    """The images that are no near-copy of a training image, and how many were withheld; AigcError if all were."""
    from ..provenance.guard import guard_for

    guard = guard_for(pipeline.checkpoint, pipeline.config.image_size)
    copies, _ = guard.near_copies(images)
    withheld = int(copies.sum())
    if withheld == len(images):
        raise AigcError(f"the memorisation guard withheld all {withheld} images: each is closer to a training "
                        f"image than {guard.threshold:.3g} (1/3 of the typical training distance); sample again "
                        f"with another --seed, or drop --guard")
    if withheld:
        err_console.print(f"guard: withheld {withheld} of {len(images)} images, near-copies of training images "
                          f"(closer than {guard.threshold:.3g})")
    return images[~copies], withheld
