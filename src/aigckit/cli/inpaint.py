"""`aigckit inpaint [RUN_DIR] --image in.png --mask mask.png --out out.png`: image repair."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from PIL import Image, UnidentifiedImageError

from ..errors import AigcError
from .common import err_console, user_errors

__all__ = ["inpaint_command"]


def _open(path: Path, what: str) -> Image.Image:
    try:
        with Image.open(path) as image:
            return image.copy()
    except (FileNotFoundError, UnidentifiedImageError, OSError):
        raise AigcError(f"cannot read the {what} {path}; give a PNG or JPEG file") from None


@user_errors
def inpaint_command(
    run_dir: Annotated[Optional[Path], typer.Argument(help="trained diffusion or VAE run (not needed for telea)")] = None,
    image: Annotated[Path, typer.Option(help="image to repair")] = Path("in.png"),
    mask: Annotated[Path, typer.Option(help="mask: white pixels are repainted")] = Path("mask.png"),
    out: Annotated[Path, typer.Option(help="where to write the result")] = Path("inpainted.png"),
    method: Annotated[Optional[str], typer.Option(help="repaint | latent | telea | navier-stokes")] = None,
    seed: Annotated[Optional[int], typer.Option(help="random seed")] = None,
    label: Annotated[Optional[int], typer.Option(help="class of the image, for a conditional model")] = None,
    steps: Annotated[Optional[int], typer.Option(help="repaint: denoising steps")] = None,
    jump_length: Annotated[Optional[int], typer.Option(help="repaint: steps between jumps back up")] = None,
    resamplings: Annotated[Optional[int], typer.Option(help="repaint: passes over each jump")] = None,
    iterations: Annotated[Optional[int], typer.Option(help="latent: optimisation steps")] = None,
) -> None:
    """Rebuild the masked part of an image; known pixels are kept exactly."""
    from ..pipelines import load
    from ..pipelines.inpaint import inpaint

    pipeline = load(run_dir) if run_dir is not None else None
    options = {"steps": steps, "jump_length": jump_length, "resamplings": resamplings, "iterations": iterations}
    options = {k: v for k, v in options.items() if v is not None}
    result = inpaint(_open(image, "image"), _open(mask, "mask"), method=method, pipeline=pipeline, seed=seed,
                     label=label, **options)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    result.save(tmp, format="PNG")
    tmp.replace(out)
    err_console.print(f"wrote {out}")
