"""What every command shares: turning user errors into one line and exit code 2, and checks of common inputs."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from PIL import Image, UnidentifiedImageError
from rich.console import Console
from rich.markup import escape

from ..errors import AigcError

__all__ = ["user_errors", "err_console", "check_output_file", "open_image", "check_seed", "require_image_model", "PrecisionOption",
           "check_precision", "say_precision",
           "require_at_least"]

MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed takes 64-bit seeds; eval adds one per batch

F = TypeVar("F", bound=Callable[..., Any])
PrecisionOption = Annotated[str, typer.Option(help="auto (bf16 where this machine runs it natively and faster), "
                                                    "fp32 or bf16")]
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def user_errors(command: F) -> F:
    """Print an AigcError as one 'error: ...' line on stderr and exit with its code (2)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except AigcError as error:
            err_console.print(f"[bold red]error:[/] {escape(str(error))}", markup=True)  # messages may hold [...]
            raise typer.Exit(error.exit_code) from None

    return wrapper  # type: ignore[return-value]


def check_output_file(path: Path, option: str = "--out", suffix: str = ".png") -> None:
    """Refuse, before any work, an output path that is a folder, does not end in `suffix`, or whose folder is
    missing (a typo there would otherwise create folders nobody asked for)."""
    if path.is_dir():
        raise AigcError(f"{option} {path} is a folder; give a file name ending in {suffix}")
    if path.suffix.lower() != suffix:
        raise AigcError(f"{option} {path}: the result is written as {suffix[1:].upper()}; give a file name ending "
                        f"in {suffix}")
    if not path.parent.is_dir():
        raise AigcError(f"{option} {path}: the folder {path.parent} does not exist; create it or choose another")


def require_image_model(pipeline: Any, run_dir: Path, command: str) -> None:
    """Refuse a language model's run for an image command, pointing at `aigckit generate`."""
    from ..pipelines import ImagePipeline

    if not isinstance(pipeline, ImagePipeline):
        raise AigcError(f"{run_dir} holds a language model, and aigckit {command} works on image models; "
                        f"for text use: aigckit generate {run_dir} --prompt \"...\"")


def require_at_least(minimum: int, **values: int | None) -> None:
    """Refuse any given option value below `minimum`, naming the option as the user typed it."""
    for name, value in values.items():
        if value is not None and value < minimum:
            raise AigcError(f"--{name.replace('_', '-')} must be at least {minimum}, got {value}")


def check_seed(seed: int | None) -> None:
    """Refuse a seed outside 0..2^63-1, which the random generators cannot take."""
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise AigcError(f"--seed must be a whole number in 0..{MAX_SEED}, got {seed}")


def check_precision(precision: str) -> None:
    """Refuse a --precision other than auto, fp32 or bf16."""
    if precision not in ("auto", "fp32", "bf16"):
        raise AigcError(f"--precision must be auto, fp32 or bf16, got {precision!r}")


def say_precision(pipeline: Any) -> None:
    """The warning of an explicit bf16 that this machine emulates, if any (one line on stderr)."""
    if pipeline.precision.warning:
        err_console.print(f"[bold yellow]warning:[/] {escape(pipeline.precision.warning)}", markup=True)


def open_image(path: Path, option: str) -> Image.Image:
    """The image file given to `option` (e.g. '--image'), read whole; one line for a missing or unreadable file."""
    what = option.removeprefix("--")
    if not path.is_file():
        raise AigcError(f"the {what} {path} is not a file; give {option} a PNG or JPEG file")
    try:
        with Image.open(path) as image:
            return image.copy()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        raise AigcError(f"the {what} {path} is not an image PIL can read; give a PNG or JPEG file") from None
