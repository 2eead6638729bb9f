"""`aigckit demo`: the main job — train on the bundled digits and show what came out."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import err_console, user_errors

__all__ = ["demo_command"]


@user_errors
def demo_command(
    out: Annotated[Path, typer.Option(help="folder for the demo's runs and pictures (replaced)")] = Path("runs/demo"),
    configs: Annotated[Path, typer.Option(help="folder holding the presets")] = Path("configs"),
    steps: Annotated[Optional[int], typer.Option(help="override train.max_steps (for a quick look)")] = None,
) -> None:
    """Train a class-conditional DCGAN on the bundled digits; write a per-class grid and a loss plot."""
    from ..config import load_config
    from ..evaluation import plot_losses
    from ..pipelines import load
    from ..training import train

    overrides = [f"train.max_steps={steps}"] if steps else []
    config = load_config(configs / "dcgan-digits.yaml", overrides)
    run_dir = out / "dcgan-digits"
    shutil.rmtree(run_dir, ignore_errors=True)
    err_console.print(f"[bold]training[/] a class-conditional DCGAN on the bundled digits -> {run_dir}")
    train(config, run_dir)

    pipeline = load(run_dir)
    per_class = 10
    labels = [c for c in range(pipeline.num_classes) for _ in range(per_class)]
    grid = pipeline.save_grid(pipeline.sample(len(labels), labels=labels, seed=0), out / "dcgan-digits-grid.png",
                              nrow=per_class)
    losses = plot_losses(run_dir, out / "dcgan-digits-losses.png")
    typer.echo(f"grid, one row per class: {grid}")
    typer.echo(f"loss curves:             {losses}")
    typer.echo(f"run directory:           {run_dir}")
