"""The `aigckit` command line: one file per command, assembled here."""

from __future__ import annotations

import typer

from .compare import compare_command
from .demo import demo_command
from .evaluate import eval_command
from .generate import generate_command
from .inpaint import inpaint_command
from .listing import datasets_command, models_command
from .sample import sample_command
from .train import train_command
from .watermark import watermark_app

__all__ = ["app", "main"]

app = typer.Typer(help="aigckit: train, sample, evaluate and serve generative models.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
app.command("train")(train_command)
app.command("sample")(sample_command)
app.command("generate")(generate_command)
app.command("inpaint")(inpaint_command)
app.command("eval")(eval_command)
app.command("compare")(compare_command)
app.command("datasets")(datasets_command)
app.command("models")(models_command)
app.command("demo")(demo_command)
app.add_typer(watermark_app, name="watermark")


def main() -> None:
    """Entry point of the `aigckit` console script."""
    app()
