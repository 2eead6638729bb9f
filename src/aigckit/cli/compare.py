"""`aigckit compare RUN_DIR ... --out report/`: an offline HTML report comparing runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import AigcError
from .common import err_console, user_errors

__all__ = ["compare_command"]


def _check_runs(run_dirs: list[Path], out: Path) -> None:
    """Refuse a folder that is not a run, a run given twice, or an --out that is a file, before writing anything."""
    for run_dir in run_dirs:
        if not (run_dir / "config.yaml").is_file():
            what = "does not exist" if not run_dir.exists() else "is not a run directory (no config.yaml)"
            raise AigcError(f"{run_dir} {what}; give run directories made by aigckit train")
    names = [run_dir.name for run_dir in run_dirs]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise AigcError(f"runs named {', '.join(twice)} are given twice (the report names them by folder name); "
                        f"give each run once")
    if out.exists() and not out.is_dir():
        raise AigcError(f"--out {out} is a file; give a folder for index.html and its plots")
    if not out.parent.is_dir():
        raise AigcError(f"--out {out}: the folder {out.parent} does not exist; create it or choose another")


@user_errors
def compare_command(
    run_dirs: Annotated[list[Path], typer.Argument(help="run directories (evaluate them first with aigckit eval)")],
    out: Annotated[Path, typer.Option(help="folder for index.html and its plots")] = Path("report"),
) -> None:
    """Write an HTML report: sample grids, loss curves, the metric table and FID-vs-steps plots."""
    from ..evaluation.report import compare_runs

    _check_runs(run_dirs, out)
    err_console.print(f"wrote {compare_runs(run_dirs, out)}")
