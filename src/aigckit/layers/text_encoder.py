"""A small Transformer text encoder over hashed words, and the cross-attention that lets an image network read it.

Captions reach a model as their UTF-8 bytes (data.captions: (B, L) with 0 as padding). The encoder splits them
into words (lower case, runs of letters and digits) and maps each word to one of `buckets` embeddings by a
fixed hash (CRC-32: the hashing trick, Weinberger et al. 2009), so it needs no vocabulary file and reads any
caption, and "7", "top" and "left" are one token each, which a small model learns to read far sooner than their
bytes (measured: benchmarks/multimodal.py). A start token begins every caption (an empty caption is that one
token: the "no caption" of classifier-free guidance). Pre-LayerNorm Transformer layers (PyTorch's own) attend
over the caption's words only; padding is masked, so a caption encodes the same whatever the batch it travels in.
"""

from __future__ import annotations

import re
import zlib

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["TextEncoder", "TextAdapter", "CrossAttention", "hashed_words", "MAX_WORDS"]

WORD = re.compile(r"\w+")  # a word: a run of letters, digits or underscores

MAX_WORDS = 32  # words read from a caption; more are dropped


def hashed_words(captions: Tensor, buckets: int) -> Tensor:
    """Caption bytes (B, L) -> (B, 1 + W) token ids: 1 (start), then each word's bucket (2 .. buckets + 1), 0 as
    padding; W is the most words of any caption in the batch (at most MAX_WORDS)."""
    rows = []
    for row in captions.cpu().to(torch.uint8).numpy():
        text = row.tobytes().split(b"\0", 1)[0].decode("utf-8", errors="replace").lower()
        rows.append([2 + zlib.crc32(word.encode("utf-8")) % buckets for word in WORD.findall(text)][:MAX_WORDS])
    width = max(len(row) for row in rows) if rows else 0
    tokens = torch.zeros((len(rows), 1 + width), dtype=torch.long)
    tokens[:, 0] = 1
    for i, row in enumerate(rows):
        tokens[i, 1:1 + len(row)] = torch.tensor(row, dtype=torch.long)
    return tokens.to(captions.device)


def _layers(width: int, layers: int, heads: int) -> nn.ModuleList:
    """Pre-LayerNorm Transformer encoder layers (PyTorch's own), no dropout."""
    return nn.ModuleList(nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, activation="gelu",
                                                    batch_first=True, norm_first=True) for _ in range(layers))


def _attend(layers: nn.ModuleList, x: Tensor, mask: Tensor) -> Tensor:
    padding = ~mask if x.shape[1] > 1 else None
    for layer in layers:
        x = layer(x, src_key_padding_mask=padding)
    return x


class TextEncoder(nn.Module):
    """Caption bytes (B, L) -> per-token features (B, T, width), their mask (B, T) and a pooled (B, width)
    summary; T is 1 + the most words of any caption in the batch (the start token, then the words)."""

    def __init__(self, width: int, layers: int, heads: int, buckets: int = 4096) -> None:
        super().__init__()
        self.buckets = buckets
        self.embed = nn.Embedding(buckets + 2, width)
        self.position = nn.Embedding(MAX_WORDS + 1, width)
        self.layers = _layers(width, layers, heads)
        self.norm = nn.LayerNorm(width)
        nn.init.normal_(self.embed.weight, std=0.02)
        nn.init.normal_(self.position.weight, std=0.02)

    def forward(self, captions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """captions: (B, L) UTF-8 bytes, 0-padded; returns (features, mask, pooled); mask True where a token is."""
        tokens = hashed_words(captions, self.buckets)
        mask = tokens != 0
        x = self.embed(tokens) + self.position(torch.arange(tokens.shape[1], device=tokens.device))
        x = self.norm(_attend(self.layers, x, mask))
        pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        return x, mask, pooled


class TextAdapter(nn.Module):
    """Transformer layers over an encoder's token features (B, T, width), padding masked: trained with the image
    network that reads them, also where the encoder itself is frozen."""

    def __init__(self, width: int, layers: int, heads: int) -> None:
        super().__init__()
        self.layers = _layers(width, layers, heads)
        self.norm = nn.LayerNorm(width)

    def forward(self, features: Tensor, mask: Tensor) -> Tensor:
        """features: (B, T, width); mask: (B, T) True where a token is -> (B, T, width)."""
        return self.norm(_attend(self.layers, features, mask))


class CrossAttention(nn.Module):
    """Every position of an image feature map attends to the caption's tokens (queries from the image, keys and
    values from the text), added back through a projection that starts at zero.

    The queries also carry where they are (sines and cosines of the row and column at a few frequencies, through
    a learned projection): a convolutional feature map knows little of its absolute position, and captions that
    say "at the top left" need the top left to ask for it (measured: without them a 20-minute model drew digits
    and places at chance)."""

    FREQUENCIES = (1, 2, 4, 8)

    def __init__(self, channels: int, context_width: int, norm: nn.Module, head_dim: int = 32) -> None:
        super().__init__()
        self.heads = max(1, channels // head_dim)
        self.norm = norm
        self.query = nn.Conv2d(channels, channels, 1)
        self.where = nn.Conv2d(4 * len(self.FREQUENCIES), channels, 1, bias=False)
        self.key_value = nn.Linear(context_width, 2 * channels)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def positions(self, height: int, width: int, device: torch.device) -> Tensor:
        """(1, 4F, H, W) sines and cosines of each pixel's row and column (in [-1, 1]) at the F frequencies, in
        half turns (the lowest one rises monotonically across the map, so no two rows or columns share it)."""
        ys = torch.linspace(-1, 1, height, device=device)[:, None].expand(height, width)
        xs = torch.linspace(-1, 1, width, device=device)[None, :].expand(height, width)
        angles = torch.stack([f * torch.pi / 2 * c for f in self.FREQUENCIES for c in (ys, xs)])
        return torch.cat([angles.sin(), angles.cos()])[None]

    def forward(self, x: Tensor, context: Tensor, mask: Tensor) -> Tensor:
        """x: (B, C, H, W); context: (B, L, width); mask: (B, L) True where a token is."""
        B, C, H, W = x.shape
        d = C // self.heads
        q = self.query(self.norm(x)) + self.where(self.positions(H, W, x.device).to(x.dtype))
        q = q.reshape(B, self.heads, d, H * W).transpose(-1, -2)  # (B, heads, HW, d)
        k, v = self.key_value(context).reshape(B, -1, 2, self.heads, d).permute(2, 0, 3, 1, 4)  # (B, heads, L, d)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])
        return x + self.proj(out.transpose(-1, -2).reshape(B, C, H, W))
