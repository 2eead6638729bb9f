"""Generate clips from a trained video diffusion run: `aigckit.load(run_dir).sample(4, labels=[3, 7])`."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor

from ..errors import AigcError
from ..imaging import save_grid
from ..layers import check_class_labels
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
