"""`aigckit sample RUN_DIR --n 64 --out grid.png`: images from a trained run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import AigcError
from .common import (PrecisionOption, check_output_file, check_precision, check_seed, err_console, require_at_least,
                     require_image_model, say_precision, user_errors)

__all__ = ["sample_command"]


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
    labels: Annotated[Optional[str], typer.Option(help="class labels, one or n, comma-separated")] = None,
    seed: Annotated[Optional[int], typer.Option(help="random seed")] = None,
    out: Annotated[Path, typer.Option(help="PNG grid to write")] = Path("samples.png"),
    nrow: Annotated[int, typer.Option(help="images per grid row")] = 8,
    sampler: Annotated[Optional[str], typer.Option(help="diffusion: ddpm, ddim or dpm-solver++")] = None,
    steps: Annotated[Optional[int], typer.Option(help="diffusion: denoising steps, 1..num_train_steps")] = None,
    guidance: Annotated[Optional[float], typer.Option(help="diffusion: classifier-free guidance >= 0")] = None,
    eta: Annotated[Optional[float], typer.Option(help="diffusion, ddim: noise in [0, 1]")] = None,
    precision: PrecisionOption = "auto",
) -> None:
    """Sample n images from a trained run and save them as a grid."""
    from ..pipelines import load

    require_at_least(1, n=n, nrow=nrow)
    check_seed(seed)
    label_list = parse_labels(labels)
    check_output_file(out)
    check_precision(precision)
    pipeline = load(run_dir, precision=precision)
    require_image_model(pipeline, run_dir, "sample")
    say_precision(pipeline)
    options = {"sampler": sampler, "steps": steps, "guidance": guidance, "eta": eta}
    images = pipeline.sample(n, labels=label_list, seed=seed,
                             **{k: v for k, v in options.items() if v is not None})
    pipeline.save_grid(images, out, nrow=nrow)
    err_console.print(f"wrote {out} ({n} images from {pipeline.checkpoint}; {pipeline.precision.describe()})")
