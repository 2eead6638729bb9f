"""`aigckit inpaint [RUN_DIR] --image in.png --mask mask.png --out out.png`: image repair."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..atomic import atomic_write_bytes
from .common import (PrecisionOption, check_output_file, check_precision, check_seed, err_console, open_image, require_at_least,
                     require_image_model, say_precision, user_errors)

__all__ = ["inpaint_command"]


@user_errors
def inpaint_command(
    run_dir: Annotated[Optional[Path], typer.Argument(help="trained diffusion or VAE run (not needed for telea)")] = None,
    image: Annotated[Path, typer.Option(help="image to repair")] = Path("in.png"),
    mask: Annotated[Path, typer.Option(help="mask: white pixels are repainted")] = Path("mask.png"),
    out: Annotated[Path, typer.Option(help="PNG file to write the result to")] = Path("inpainted.png"),
    method: Annotated[Optional[str], typer.Option(help="repaint (diffusion) | latent (VAE) | telea | navier-stokes "
                                                       "[default: the run's, telea without a run]")] = None,
    seed: Annotated[Optional[int], typer.Option(help="random seed")] = None,
    label: Annotated[Optional[int], typer.Option(help="class of the image, for a conditional model")] = None,
    steps: Annotated[Optional[int], typer.Option(help="repaint: denoising steps")] = None,
    jump_length: Annotated[Optional[int], typer.Option(help="repaint: steps between jumps back up")] = None,
    resamplings: Annotated[Optional[int], typer.Option(help="repaint: passes over each jump")] = None,
    guidance: Annotated[Optional[float], typer.Option(help="repaint, with --label: classifier-free guidance")] = None,
    iterations: Annotated[Optional[int], typer.Option(help="latent: optimisation steps")] = None,
    precision: PrecisionOption = "auto",
    watermark: Annotated[bool, typer.Option("--watermark/--no-watermark", help="embed the invisible watermark, "
                                            "which moves known pixels by a few levels (the opt-out, which keeps "
                                            "them exactly, is recorded in the PNG)")] = True,
) -> None:
    """Rebuild the masked part of an image; known pixels are kept (exactly with --no-watermark)."""
    from ..pipelines import load
    from ..pipelines.inpaint import CLASSICAL_METHODS, inpaint
    from ..provenance.marking import configured, marked_png, png_of
    from ..checkpoint import checkpoint_sha256

    options = {"steps": steps, "jump_length": jump_length, "resamplings": resamplings, "iterations": iterations}
    require_at_least(1, **options)
    check_seed(seed)
    options = {k: v for k, v in {**options, "guidance": guidance}.items() if v is not None}
    check_output_file(out)
    check_precision(precision)
    source, hole = open_image(image, "--image"), open_image(mask, "--mask")
    key, credentials = configured(watermark)
    pipeline = None
    if run_dir is not None:
        pipeline = load(run_dir, precision=precision)
        require_image_model(pipeline, run_dir, "inpaint")
        say_precision(pipeline)
    model = pipeline if method not in CLASSICAL_METHODS else None  # the run, when its model repaints
    if model is not None and seed is None:
        seed = secrets.randbits(63)  # drawn here so that it is recorded and marked
    result = inpaint(source, hole, method=method, pipeline=pipeline, seed=seed, label=label, **options)
    metadata = {"model": Path(run_dir).resolve().name if model else None,
                "checkpoint_sha256": checkpoint_sha256(Path(model.checkpoint)) if model else None,
                "seed": seed, "label": label, "method": method or (model.family.inpaint_method if model else "telea"),
                "input": image.name, **options}
    edited_from = None
    if credentials is not None:  # the input file as the manifest's parent ingredient (as PNG if c2pa cannot read it)
        raw = image.read_bytes()
        edited_from = raw if raw.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")) else png_of(source)
    data, _ = marked_png(result, metadata, key=key, credentials=credentials, edited_from=edited_from)
    atomic_write_bytes(out, data)
    marks = ("watermarked" if key else "not watermarked") + (", signed" if credentials else "")
    err_console.print(f"wrote {out} ({marks})")
