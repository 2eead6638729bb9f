"""`aigckit compare RUN_DIR ... --out report/`: an offline HTML report comparing runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import err_console, user_errors

__all__ = ["compare_command"]


@user_errors
def compare_command(
    run_dirs: Annotated[list[Path], typer.Argument(help="run directories (evaluate them first with aigckit eval)")],
    out: Annotated[Path, typer.Option(help="folder for index.html and its plots")] = Path("report"),
) -> None:
    """Write an HTML report: sample grids, loss curves, the metric table and FID-vs-steps plots."""
    from ..evaluation.report import compare_runs

    err_console.print(f"wrote {compare_runs(run_dirs, out)}")
