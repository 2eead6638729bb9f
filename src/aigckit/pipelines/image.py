"""Generate images from a trained run: `aigckit.load(run_dir).sample(16)`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor, nn

from ..checkpoint import from_pretrained, latest_checkpoint, list_checkpoints
from ..errors import AigcError
from ..imaging import save_grid, to_pil
from ..layers import check_class_labels
from ..layers.noise import BatchGenerators
from ..precision import FP32, Precision, resolve_precision

__all__ = ["ImagePipeline", "load"]


class ImagePipeline:
    """A trained image model (EMA weights when saved) and its family's sampler."""

    def __init__(self, model: nn.Module, family: Any, checkpoint: Path | None = None,
                 precision: Precision = FP32) -> None:
        self.model = model
        self.family = family
        self.checkpoint = checkpoint
        self.precision = precision  # sampling runs the networks in this precision (the samplers' math in fp32)

    @property
    def config(self) -> Any:
        """The model's config (image_size, channels, num_classes, ...)."""
        return self.model.config

    @property
    def num_classes(self) -> int:
        """Classes the model can be conditioned on; 0 for an unconditional model."""
        return self.config.num_classes if self.config.conditional else 0

    @property
    def text_conditional(self) -> bool:
        """Whether the model draws what a caption (the `prompt` option) says."""
        return bool(getattr(self.config, "text_conditional", False))

    def check_prompt(self, prompt: str | None) -> None:
        """Refuse a missing or too long prompt for a text-conditional model, or any prompt for another, with
        AigcError."""
        if not self.text_conditional:
            if prompt is not None:
                raise AigcError(f"{self.config.name} models here are not text-conditional; drop the prompt")
            return
        if not prompt:
            example = (self.config.prompts or ["a small 7 at the top left"])[0]
            raise AigcError(f"this model draws what a caption says; give a prompt such as {example!r}")
        from ..models.diffusion.family import prompt_bytes

        prompt_bytes(self.model, 1, prompt)

    def sample(self, n: int, labels: list[int] | Tensor | None = None, seed: int | None = None, *,
               generator: torch.Generator | BatchGenerators | None = None, **options: Any) -> Tensor:
        """n images, (n, C, H, W) in [-1, 1]; `labels` (length n, or one label for all) for conditional models.

        The noise comes from `seed`, or from `generator` (BatchGenerators: a seed per group of rows)."""
        if n <= 0:
            raise AigcError(f"n must be positive, got {n}")
        if seed is not None and generator is not None:
            raise ValueError("give a seed or a generator, not both")
        label_tensor = self.label_tensor(n, labels)
        self.family.check_sample_options(options, self.config.name)
        if seed is not None:
            generator = torch.Generator().manual_seed(seed)
        with self.precision.autocast(next(self.model.parameters()).device):
            images = self.family.sample(self.model, n, labels=label_tensor, generator=generator, **options)
        return images.float()

    def label_tensor(self, n: int, labels: list[int] | Tensor | None) -> Tensor | None:
        """The (n,) labels of `labels` (None, one for all, or n), checked against the model; AigcError if wrong."""
        if labels is None:
            return None
        if self.text_conditional:
            raise AigcError("this model is conditioned on captions, not class labels; give a prompt instead")
        tensor = torch.as_tensor(labels, dtype=torch.int64).flatten()
        check_class_labels(tensor, conditional=self.config.conditional, num_classes=self.config.num_classes)
        if tensor.numel() == 1:
            tensor = tensor.expand(n)
        if tensor.numel() != n:
            raise AigcError(f"got {tensor.numel()} labels for {n} images; give one label or exactly n")
        return tensor

    def to_pil(self, images: Tensor) -> list[Image.Image]:
        """Images from `sample` as PIL images."""
        return to_pil(images)

    def save_grid(self, images: Tensor, path: str | Path, nrow: int = 8) -> Path:
        """Save images as one PNG grid (`nrow` images a row), small images enlarged for viewing."""
        return save_grid(images, path, nrow=nrow, upscale=max(1, 64 // images.shape[-1]))


def load(run_dir: str | Path, *, use_ema: bool = True, device: str | torch.device = "cpu", precision: str = "auto"):
    """Load the newest checkpoint of a run (or a checkpoint directory): an ImagePipeline, a VideoPipeline for a
    video model, or a TextPipeline for a language model (also for a local `transformers` causal-LM directory).

    precision: 'auto' (bf16 autocast where `device` runs it natively and faster, as in training), 'fp32' or 'bf16'.
    """
    from ..family import family_for_model
    from ..models.lm.hf import is_transformers_dir
    from .text import TextPipeline

    run_dir = Path(run_dir)
    if is_transformers_dir(run_dir):
        pipeline = TextPipeline.from_transformers(run_dir)
        pipeline.model.to(device)
    else:
        checkpoint = _checkpoint(run_dir)
        model = from_pretrained(checkpoint, use_ema=use_ema).to(device)
        family = family_for_model(model.config.name)
        if family.modality == "text":
            pipeline = TextPipeline.from_run(model, checkpoint)
        elif getattr(model.config, "frames", None) is not None:  # a video model: clips (n, T, C, H, W)
            from .video import VideoPipeline

            pipeline = VideoPipeline(model, family, checkpoint)
        else:
            pipeline = ImagePipeline(model, family, checkpoint)
    pipeline.precision = resolve_precision(precision, device)
    return pipeline


def _checkpoint(run_dir: Path) -> Path:
    """The checkpoint to load from `run_dir`, or AigcError saying what the path is and what to pass instead."""
    if not run_dir.exists():
        raise AigcError(f"{run_dir} does not exist; give a run directory made by aigckit train")
    if not run_dir.is_dir():
        raise AigcError(f"{run_dir} is a file, not a run directory; give the folder aigckit train wrote")
    if run_dir.name == "checkpoints" and list_checkpoints(run_dir.parent):
        raise AigcError(f"{run_dir} is a run's checkpoints folder; give the run directory {run_dir.parent} "
                        f"(its newest checkpoint) or one checkpoint such as {list_checkpoints(run_dir.parent)[-1]}")
    return latest_checkpoint(run_dir)
