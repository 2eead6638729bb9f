"""`aigckit train CONFIG [key=value ...]`: train a model into a run directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..config import load_config
from ..errors import AigcError
from ..family import family_for_model
from .common import err_console, user_errors

__all__ = ["train_command"]


@user_errors
def train_command(
    config: Annotated[Path, typer.Argument(help="YAML config, e.g. configs/dcgan-digits.yaml")],
    overrides: Annotated[Optional[list[str]], typer.Argument(help="dotted overrides: train.max_steps=500")] = None,
    run_dir: Annotated[Optional[Path], typer.Option(help="run directory [default: runs/<config name>]")] = None,
    resume: Annotated[bool, typer.Option("--resume/--no-resume", help="continue from the latest complete checkpoint")] = False,
    num_processes: Annotated[int, typer.Option(help="data-parallel processes on this machine (torchrun)")] = 1,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
    init: Annotated[Optional[str], typer.Option(help="fine-tune a pretrained transformers causal LM: a local "
                                                     "directory or a Hub id such as gpt2 (downloaded)")] = None,
) -> None:
    """Train a model; every key of the config can be overridden as key=value."""
    overrides = overrides or []
    if num_processes < 1:
        raise AigcError(f"--num-processes must be at least 1, got {num_processes}")
    if init:  # the model and its own tokenizer; resolved (downloaded) when the data and model are built
        if family_for_model(load_config(config, overrides).model.name).modality != "text":
            raise AigcError(f"--init fine-tunes a pretrained language model, but {config} trains an image model; "
                            f"pass a language-model config such as configs/gpt-shakespeare-char.yaml")
        overrides = ["model.name=hf", f"model.pretrained={init}", f"data.tokenizer={init}", *overrides]
    run_config = load_config(config, overrides)  # fail here, once, before anything is launched or written
    run_dir = run_dir or Path("runs") / config.stem
    if num_processes > 1 and "WORLD_SIZE" not in os.environ:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={num_processes}",
                   "-m", "aigckit", "train", str(config), *overrides, "--run-dir", str(run_dir),
                   "--resume" if resume else "--no-resume", "--progress" if progress else "--no-progress"]
        raise typer.Exit(subprocess.call(command))

    from accelerate import PartialState

    from ..training import train

    train(run_config, run_dir, resume=resume, show_progress=progress)
    # a gloo process group left for the interpreter's exit to tear down can abort the process after the run is
    # saved ("terminate called without an active exception"): end it here (nothing to do in one process)
    PartialState().destroy_process_group()
    err_console.print(f"run: {run_dir}  (samples in {run_dir / 'samples'}, checkpoints in {run_dir / 'checkpoints'})")
