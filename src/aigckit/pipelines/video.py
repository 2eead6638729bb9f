"""Generate clips from a trained video diffusion run: `aigckit.load(run_dir).sample(4, labels=[3, 7])`, or continue a
frame with a prediction model: `.sample(4, first_frame=Image.open("frame.png"))`."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..errors import AigcError
from ..imaging import save_grid
from ..layers import check_class_labels
from ..layers.noise import BatchGenerators
from ..video import DEFAULT_FPS, save_clip, video_grid
from .image import ImagePipeline

__all__ = ["VideoPipeline"]


class VideoPipeline(ImagePipeline):
    """A trained video model: `sample` gives clips (n, T, C, H, W) in [-1, 1], conditioned on each clip's K class
    labels (one per digit) for a conditional model."""

    @property
    def frames(self) -> int:
        """Frames per clip, T."""
        return self.config.frames

    @property
    def labels_per_video(self) -> int:
        """K, the class labels a clip takes (a conditional model), else 0."""
        return self.config.labels_per_video if self.config.conditional else 0

    def sample(self, n: int, labels: list[int] | Tensor | None = None, seed: int | None = None, *,
               generator: torch.Generator | BatchGenerators | None = None,
               first_frame: Image.Image | list[Image.Image] | Tensor | None = None, **options) -> Tensor:
        """n clips (n, T, C, H, W) in [-1, 1]; with `first_frame` (a model trained with given_first_frame), each
        continues that frame: one image for all clips, n images, or (n, C, H, W) / (C, H, W) in [-1, 1]."""
        if first_frame is not None:
            options["first_frame"] = self.first_frame_tensor(n, first_frame)
        return super().sample(n, labels, seed, generator=generator, **options)

    def first_frame_tensor(self, n: int, first_frame: Image.Image | list[Image.Image] | Tensor) -> Tensor:
        """(n, C, H, W) in [-1, 1] from one image or n images (resized to the model's frames, grey or RGB as the
        model's) or a tensor already in that form ((C, H, W) stands for every clip)."""
        if isinstance(first_frame, Tensor):
            frames = first_frame.float()
        else:
            images = [first_frame] if isinstance(first_frame, Image.Image) else list(first_frame)
            size, mode = self.config.image_size, "L" if self.config.channels == 1 else "RGB"
            pixels = [np.asarray(im.convert(mode).resize((size, size), Image.Resampling.LANCZOS), dtype=np.float32)
                      .reshape(size, size, -1) for im in images]
            frames = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2) / 127.5 - 1
        if frames.ndim == 3 or len(frames) == 1:
            frames = frames.reshape(1, *frames.shape[-3:]).expand(n, -1, -1, -1)
        if len(frames) != n:
            raise AigcError(f"got {len(frames)} first frames for {n} clips; give one (for every clip) or exactly n")
        return frames

    def label_tensor(self, n: int, labels: list[int] | Tensor | None) -> Tensor | None:
        """The (n, K) labels of `labels`: K class ids for every clip, or n * K (K per clip, in order), or an
        (n, K) tensor; AigcError if they do not fit the model."""
        if labels is None:
            return None
        tensor = torch.as_tensor(labels, dtype=torch.int64)
        check_class_labels(tensor, conditional=self.config.conditional, num_classes=self.config.num_classes)
        K = self.labels_per_video
        if tensor.numel() == K:
            return tensor.flatten().expand(n, K)
        if tensor.numel() == n * K:
            return tensor.reshape(n, K)
        raise AigcError(f"this model takes {K} label{'s' if K > 1 else ''} per clip (its digits); give {K} (for "
                        f"every clip) or {n * K} ({K} per clip, in order), got {tensor.numel()}")

    def save_grid(self, videos: Tensor, path: str | Path, nrow: int | None = None) -> Path:
        """Save clips as one PNG: a row of frames per clip (nrow is the frame count), small frames enlarged."""
        if nrow not in (None, videos.shape[1]):
            raise AigcError(f"a clip's frames fill one row of the grid ({videos.shape[1]}); drop nrow")
        return save_grid(videos.flatten(0, 1), path, nrow=videos.shape[1], upscale=max(1, 64 // videos.shape[-1]))

    def save_video(self, videos: Tensor, path: str | Path, *, nrow: int | None = None,
                   fps: float = DEFAULT_FPS) -> Path:
        """Save clips as one animated GIF or MP4 (by the suffix), tiled `nrow` a row (default: a square)."""
        nrow = math.ceil(math.sqrt(len(videos))) if nrow is None else nrow
        return save_clip(video_grid(videos, nrow=nrow), path, fps=fps, upscale=max(1, 64 // videos.shape[-1]))
