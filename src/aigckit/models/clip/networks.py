"""CLIP at our scale (Radford et al. 2021, https://arxiv.org/abs/2103.00020): a small CNN for images and the
byte-level Transformer for captions, each projected into one embedding space and L2-normalised, so that the
cosine of an image and a caption says how well they match; trained with the symmetric InfoNCE loss over a batch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...layers import TextEncoder
from .config import CLIPConfig

__all__ = ["ImageEncoder", "CLIP", "contrastive_loss", "MAX_LOGIT_SCALE"]

INIT_TEMPERATURE = 0.07  # CLIP's initial softmax temperature: logit_scale starts at log(1 / 0.07)
MAX_LOGIT_SCALE = 100.0  # CLIP clips the learned scale at 100 "to prevent training instability"


def _norm_act(width: int) -> nn.Sequential:
    return nn.Sequential(nn.GroupNorm(8, width), nn.SiLU())


class ImageEncoder(nn.Module):
    """Images (B, C, S, S) in [-1, 1] -> features (B, out_features): a 3x3 stem, then per width a stride-2 3x3
    convolution and a 3x3 convolution, each followed by GroupNorm and SiLU; the last map flattened or averaged."""

    def __init__(self, channels: int, image_size: int, widths: tuple[int, ...], pool: str) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(channels, widths[0], 3, padding=1), _norm_act(widths[0])]
        previous = widths[0]
        for width in widths:
            layers += [nn.Conv2d(previous, width, 3, stride=2, padding=1), _norm_act(width),  # halves H, W
                       nn.Conv2d(width, width, 3, padding=1), _norm_act(width)]
            previous = width
        self.body = nn.Sequential(*layers)
        self.pool = pool
        side = image_size // 2 ** len(widths)
        self.out_features = widths[-1] * (side * side if pool == "flatten" else 1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.body(x)  # (B, widths[-1], S / 2^n, S / 2^n)
        # flattening keeps each cell's features apart (the captions name positions); the mean pools them away
        return h.flatten(1) if self.pool == "flatten" else h.mean((2, 3))


class CLIP(nn.Module):
    """Both encoders, their linear projections into the embedding space, and the learned logit scale."""

    def __init__(self, config: CLIPConfig) -> None:
        super().__init__()
        self.config = config
        self.image_encoder = ImageEncoder(config.channels, config.image_size, config.image_widths, config.pool)
        self.image_projection = nn.Linear(self.image_encoder.out_features, config.embed_dim, bias=False)
        self.text_encoder = TextEncoder(config.text_width, config.text_layers, config.text_heads)
        self.text_projection = nn.Linear(config.text_width, config.embed_dim, bias=False)
        # log of the inverse temperature, learned (CLIP section 2.5); exp() multiplies the cosines into logits
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / INIT_TEMPERATURE)))
        self.source: dict[str, str] = {}  # where the weights came from (evaluation.clip_score.load_clip fills it)

    def encode_images(self, images: Tensor) -> Tensor:
        """images (B, C, S, S) in [-1, 1] -> unit vectors (B, embed_dim), float32."""
        return F.normalize(self.image_projection(self.image_encoder(images)).float(), dim=-1)

    def encode_captions(self, captions: Tensor) -> Tensor:
        """caption bytes (B, L), 0-padded, L <= caption_bytes -> unit vectors (B, embed_dim), float32."""
        _, _, pooled = self.text_encoder(captions)  # (B, text_width): mean over the caption's tokens
        return F.normalize(self.text_projection(pooled).float(), dim=-1)

    def scale(self) -> Tensor:
        """The multiplier of the cosines, exp(logit_scale), at most 100."""
        # clamped in the forward pass rather than after each optimizer step: past 100 the gradient is zero
        return self.logit_scale.exp().clamp(max=MAX_LOGIT_SCALE)

    def forward(self, images: Tensor, captions: Tensor) -> Tensor:
        """Logits (B, B) of every image (rows) against every caption (columns); the matching pairs on the diagonal."""
        image_embeddings = self.encode_images(images)  # (B, D)
        text_embeddings = self.encode_captions(captions)  # (B, D)
        return self.scale() * image_embeddings @ text_embeddings.T


def contrastive_loss(logits: Tensor) -> Tensor:
    """Symmetric InfoNCE: the mean of cross-entropy picking each image's caption (rows) and each caption's image
    (columns) among the batch, the i-th of each being the pair (CLIP's pseudocode, figure 3). logits (B, B + M):
    columns past the B-th are captions of no image (hard negatives), offered to the images only."""
    B = logits.shape[0]
    targets = torch.arange(B, device=logits.device)
    logits = logits.float()
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits[:, :B].T, targets)) / 2
