"""Trainer callbacks: plain objects with on_fit_start / on_step_end / on_fit_end, called by name."""

from __future__ import annotations

import csv
import io
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..atomic import atomic_write_text
from ..flops import measured_peak_flops
from ..imaging import save_grid
from ..metrics_log import read_metrics

if TYPE_CHECKING:
    from .trainer import Trainer

__all__ = ["Callbacks", "EMAUpdate", "MetricsLogger", "SampleGrids", "Checkpointer", "ProgressBar"]


class Callbacks:
    """A list of callbacks; `call(hook, trainer)` runs each one that defines `hook`."""

    def __init__(self, callbacks: list[Any]) -> None:
        self.callbacks = callbacks

    def call(self, hook: str, trainer: Trainer) -> None:
        """Run `hook` on every callback that has it, in order."""
        for callback in self.callbacks:
            method = getattr(callback, hook, None)
            if method is not None:
                method(trainer)


class EMAUpdate:
    """Average the live weights into the EMA copy after every step."""

    def on_step_end(self, trainer: Trainer) -> None:
        if trainer.ema is not None:
            trainer.ema.update(trainer.model, trainer.step)


class MetricsLogger:
    """Every log_every steps: mean of each logged scalar -> metrics.csv and TensorBoard (main process).

    Rows are appended to metrics.csv; the file is rewritten only when a new column appears (and once at a
    resume, to drop rows logged after the checkpoint).
    """

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []
        self.columns: list[str] = []
        self.writer = None
        self.last_time = time.perf_counter()
        self.last_step = 0
        self.peak_flops: float | None = None  # of all processes together, in the training precision

    def on_fit_start(self, trainer: Trainer) -> None:
        if trainer.flops_per_step and trainer.accelerator.is_main_process:
            dtype = trainer.autocast_dtype or torch.float32
            self.peak_flops = measured_peak_flops(trainer.accelerator.device, dtype) * trainer.accelerator.num_processes
        self.last_time, self.last_step = time.perf_counter(), trainer.step
        if not trainer.accelerator.is_main_process:
            return
        from torch.utils.tensorboard import SummaryWriter

        path = trainer.run_dir / "metrics.csv"
        # a resumed run forgets what was logged after its checkpoint, so the file has no duplicate steps
        self.rows = [r for r in read_metrics(path) if r["step"] <= trainer.step]
        self._rewrite_csv(path)
        self.writer = SummaryWriter(str(trainer.run_dir / "tensorboard"), purge_step=trainer.step or None)

    def on_step_end(self, trainer: Trainer) -> None:
        if trainer.step % trainer.config.train.log_every and not trainer.stopping:
            return
        scalars = trainer.pop_logs()
        now = time.perf_counter()
        steps = trainer.step - self.last_step
        if steps > 0:
            scalars["steps_per_sec"] = steps / (now - self.last_time)
            scalars["examples_per_sec"] = scalars["steps_per_sec"] * trainer.examples_per_step
            if trainer.tokens_per_example:
                scalars["tokens_per_sec"] = scalars["examples_per_sec"] * trainer.tokens_per_example
            if self.peak_flops:  # model FLOPs utilisation against this machine's measured matmul peak
                scalars["mfu"] = scalars["steps_per_sec"] * trainer.flops_per_step / self.peak_flops
        self.last_time, self.last_step = now, trainer.step
        trainer.latest_logs = scalars
        if self.writer is None:
            return
        row = {"step": float(trainer.step), **scalars}
        self.rows.append(row)
        for key, value in scalars.items():
            self.writer.add_scalar(key, value, trainer.step)
        path = trainer.run_dir / "metrics.csv"
        if set(row) <= set(self.columns):
            with open(path, "a", encoding="utf-8", newline="") as f:
                self._csv_writer(f).writerow(self._format(row))
        else:
            self._rewrite_csv(path)

    def _csv_writer(self, f: Any) -> csv.DictWriter:
        return csv.DictWriter(f, fieldnames=self.columns, lineterminator="\n")

    @staticmethod
    def _format(row: dict[str, float]) -> dict[str, Any]:
        return {k: (int(v) if k == "step" else f"{v:.6g}") for k, v in row.items()}

    def _rewrite_csv(self, path: Path) -> None:
        self.columns = ["step"] + sorted({k for row in self.rows for k in row} - {"step"})
        out = io.StringIO()
        writer = self._csv_writer(out)
        writer.writeheader()
        writer.writerows(self._format(row) for row in self.rows)
        atomic_write_text(path, out.getvalue())

    def on_fit_end(self, trainer: Trainer) -> None:
        if self.writer is not None:
            self.writer.close()


class SampleGrids:
    """Every sample_every steps and at the end: a grid from the EMA model at samples/step-NNNNNN.png; for a video
    model the PNG shows one clip per row, frame by frame, and step-NNNNNN.gif beside it plays all the clips."""

    def on_step_end(self, trainer: Trainer) -> None:
        cfg = trainer.config.train
        if trainer.step % cfg.sample_every and not trainer.stopping:
            return
        model = trainer.whole_model()  # every process takes part: FSDP gathers the shards
        if not trainer.accelerator.is_main_process:
            return
        generator = torch.Generator().manual_seed(cfg.seed)
        if trainer.family.supports("text_samples"):  # a family whose samples are not images writes its own file
            trainer.family.write_samples(model, trainer.run_dir, trainer.step, generator)
            return
        path = trainer.run_dir / "samples" / f"step-{trainer.step:06d}.png"
        if getattr(model.config, "frames", None) is not None:  # clips (n, T, C, H, W), labelled by the family
            videos = trainer.family.sample(model, cfg.num_samples, generator=generator)
            save_video_samples(videos, path)
            return
        labels, nrow = grid_labels(getattr(model.config, "num_classes", 0) if getattr(model.config, "conditional",
                                                                                       False) else 0, cfg.num_samples)
        images = trainer.family.sample(model, len(labels) if labels is not None else cfg.num_samples,
                                       labels=labels, generator=generator)
        save_grid(images, path, nrow=nrow, upscale=max(1, 64 // images.shape[-1]))


def save_video_samples(videos: torch.Tensor, path: Path) -> None:
    """Clips (n, T, C, H, W) in [-1, 1] as a PNG at `path` (a row of frames per clip) and a GIF beside it (the
    clips tiled, playing together); small frames enlarged for viewing."""
    from ..video import save_gif, video_grid

    upscale = max(1, 64 // videos.shape[-1])
    save_grid(videos.flatten(0, 1), path, nrow=videos.shape[1], upscale=upscale)
    save_gif(video_grid(videos, nrow=math.ceil(math.sqrt(len(videos)))), path.with_suffix(".gif"), upscale=upscale)


def grid_labels(num_classes: int, n: int) -> tuple[torch.Tensor | None, int]:
    """Labels laid out one row per class (and the row length), or (None, 8) when unconditional."""
    if num_classes <= 0:
        return None, 8
    per_row = max(1, n // num_classes)
    return torch.arange(num_classes).repeat_interleave(per_row), per_row


class Checkpointer:
    """Every checkpoint_every steps and at the end: save a complete, atomic checkpoint."""

    def on_step_end(self, trainer: Trainer) -> None:
        cfg = trainer.config.train
        if trainer.step % cfg.checkpoint_every == 0 or trainer.stopping:
            trainer.save_checkpoint()


class ProgressBar:
    """A rich progress bar with rate, ETA and the latest losses (main process only)."""

    def __init__(self) -> None:
        self.progress = None
        self.task = None

    def on_fit_start(self, trainer: Trainer) -> None:
        if not trainer.accelerator.is_main_process:
            return
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
            TextColumn("{task.fields[losses]}"), console=Console(stderr=True),
        )
        self.progress.start()
        self.task = self.progress.add_task("train", total=trainer.config.train.max_steps, completed=trainer.step,
                                           rate="", losses="")

    def on_step_end(self, trainer: Trainer) -> None:
        if self.progress is None:
            return
        logs = trainer.latest_logs
        losses = " ".join(f"{k}={v:.3g}" for k, v in logs.items() if "loss" in k)
        rate = f"{logs['steps_per_sec']:.1f} it/s" if "steps_per_sec" in logs else ""
        self.progress.update(self.task, completed=trainer.step, rate=rate, losses=losses)

    def on_fit_end(self, trainer: Trainer) -> None:
        if self.progress is not None:
            self.progress.stop()
