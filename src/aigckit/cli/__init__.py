"""The `aigckit` command line: one file per command, assembled here."""

from __future__ import annotations

import sys
from typing import Any

import typer
from rich.markup import escape
from typer.core import TyperGroup

try:  # typer vendors its own copy of click since 0.2x
    from typer._click.exceptions import ClickException, UsageError
except ImportError:  # pragma: no cover - older typer
    from click.exceptions import ClickException, UsageError

from .common import err_console
from .compare import compare_command
from .demo import demo_command
from .detect import detect_command
from .evaluate import eval_command
from .generate import generate_command
from .info import info_command
from .inpaint import inpaint_command
from .listing import datasets_command, models_command
from .sample import sample_command
from .serve import serve_command
from .speak import speak_command
from .stylize import convert_command, stylize_command
from .train import train_command
from .watermark import watermark_app

__all__ = ["app", "main"]



class OneLineErrors(TyperGroup):
    """Usage errors (a missing argument, an option of the wrong type) end in one 'error:' line and exit code 2,
    like every other error a user can cause."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except ClickException as error:
            context = error.ctx if isinstance(error, UsageError) else None
            hint = f"; see '{context.command_path} --help'" if context is not None else ""
            err_console.print(f"[bold red]error:[/] {escape(error.format_message().rstrip('.'))}{escape(hint)}", markup=True)
            sys.exit(error.exit_code)
        except typer.Abort:
            err_console.print("aborted")
            sys.exit(130)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(cls=OneLineErrors, help="aigckit: train, sample, evaluate and serve generative models.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
app.command("train")(train_command)
app.command("sample")(sample_command)
app.command("speak")(speak_command)
app.command("generate")(generate_command)
app.command("inpaint")(inpaint_command)
app.command("stylize")(stylize_command)
app.command("convert")(convert_command)
app.command("eval")(eval_command)
app.command("compare")(compare_command)
app.command("datasets")(datasets_command)
app.command("models")(models_command)
app.command("demo")(demo_command)
app.command("serve")(serve_command)
app.command("info")(info_command)
app.command("detect")(detect_command)
app.add_typer(watermark_app, name="watermark")


def main() -> None:
    """Entry point of the `aigckit` console script."""
    app()
