"""CLIP hyper-parameters; saved as config.json beside the weights."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ...config import require

__all__ = ["CLIPConfig", "PRESETS"]


@dataclass(frozen=True)
class CLIPConfig:
    """An image encoder and a caption encoder trained so that matching pairs embed close (CLIP's objective).

    image_size and channels are filled from the dataset when left null.
    """

    name: Literal["clip"] = "clip"
    image_size: int | None = None
    channels: int | None = None
    embed_dim: int = 64  # the shared embedding space both encoders project into
    image_widths: tuple[int, ...] = (32, 64, 128)  # one stride-2 stage each: the image shrinks 2^len times
    # how the last feature map becomes one vector: flattened (keeps where things are, which captions name) or
    # averaged over positions (a global average pool, as CLIP's ResNets before their attention pooling)
    pool: Literal["flatten", "mean"] = "flatten"
    text_width: int = 64
    text_layers: int = 2
    text_heads: int = 4
    caption_bytes: int = 96  # the longest caption read, in UTF-8 bytes (data.captions' length)
    # each two-item caption of a batch also with its items' places swapped, as a caption no image has: CLIP
    # otherwise learns captions as bags of words (NegCLIP, Yuksekgonul et al. 2023, https://arxiv.org/abs/2210.01936)
    hard_negatives: bool = False
    lr: float = 1e-3

    def __post_init__(self) -> None:
        for key in ("embed_dim", "text_width", "text_layers", "text_heads", "caption_bytes"):
            require(getattr(self, key) > 0, key, "must be positive")
        require(len(self.image_widths) > 0 and all(w > 0 and w % 8 == 0 for w in self.image_widths),
                "image_widths", f"give positive multiples of 8 (GroupNorm uses 8 groups), got {self.image_widths}")
        require(self.text_width % self.text_heads == 0, "text_width",
                f"must be divisible by text_heads ({self.text_heads})")
        require(self.pool in ("flatten", "mean"), "pool", f"unknown pooling {self.pool!r}; known: flatten, mean")
        require(self.lr > 0, "lr", "must be positive")
        if self.image_size is not None:
            factor = 2 ** len(self.image_widths)
            require(self.image_size % factor == 0, "image_size",
                    f"must be divisible by {factor} for {len(self.image_widths)} stride-2 stages, got "
                    f"{self.image_size}; change data.image_size or model.image_widths")


PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"embed_dim": 32, "image_widths": (8, 16), "text_width": 32, "text_layers": 1, "text_heads": 2},
    "small": {"embed_dim": 64, "image_widths": (32, 64, 128), "text_width": 64, "text_layers": 2, "text_heads": 4},
}
