"""A small Transformer text encoder over UTF-8 bytes, and the cross-attention that lets an image network read it.

Captions reach a model as their UTF-8 bytes (data.captions: (B, L) with 0 as padding), so the encoder needs no
tokenizer file and reads any caption: byte b is token b, and token 256 starts every caption (an empty caption
is that one token: the "no caption" of classifier-free guidance). Pre-LayerNorm Transformer layers (PyTorch's
own) attend over the caption's bytes only; padding is masked, so a caption encodes the same whatever the batch
it travels in and however much padding follows it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["TextEncoder", "CrossAttention", "BYTE_VOCAB"]

BYTE_VOCAB = 257  # 256 byte values (0: padding) and the start token


class TextEncoder(nn.Module):
    """Caption bytes (B, L) -> per-position features (B, L', width), their mask (B, L') and a pooled (B, width)
    summary, where L' is 1 + the longest caption in the batch (the start token, then the bytes)."""

    def __init__(self, width: int, layers: int, heads: int, max_bytes: int) -> None:
        super().__init__()
        self.max_bytes = max_bytes
        self.embed = nn.Embedding(BYTE_VOCAB, width)
        self.position = nn.Embedding(max_bytes + 1, width)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, activation="gelu", batch_first=True,
                                       norm_first=True)
            for _ in range(layers))
        self.norm = nn.LayerNorm(width)
        nn.init.normal_(self.embed.weight, std=0.02)
        nn.init.normal_(self.position.weight, std=0.02)

    def forward(self, captions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """captions: (B, L) byte values, 0-padded; returns (features, mask, pooled); mask True where a token is."""
        captions = captions.long()
        if captions.shape[1] > self.max_bytes:
            raise ValueError(f"captions of {captions.shape[1]} bytes; this encoder reads at most {self.max_bytes}")
        present = captions != 0
        length = int(present.sum(1).max()) if captions.numel() else 0
        start = torch.full((captions.shape[0], 1), BYTE_VOCAB - 1, dtype=torch.long, device=captions.device)
        tokens = torch.cat([start, captions[:, :length]], dim=1)  # (B, 1 + length): padding beyond is dropped
        mask = tokens != 0
        x = self.embed(tokens) + self.position(torch.arange(tokens.shape[1], device=tokens.device))
        padding = ~mask if length else None
        for layer in self.layers:
            x = layer(x, src_key_padding_mask=padding)
        x = self.norm(x)
        pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        return x, mask, pooled


class CrossAttention(nn.Module):
    """Every position of an image feature map attends to the caption's tokens (queries from the image, keys and
    values from the text), added back through a projection that starts at zero."""

    def __init__(self, channels: int, context_width: int, norm: nn.Module, head_dim: int = 32) -> None:
        super().__init__()
        self.heads = max(1, channels // head_dim)
        self.norm = norm
        self.query = nn.Conv2d(channels, channels, 1)
        self.key_value = nn.Linear(context_width, 2 * channels)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: Tensor, context: Tensor, mask: Tensor) -> Tensor:
        """x: (B, C, H, W); context: (B, L, width); mask: (B, L) True where a token is."""
        B, C, H, W = x.shape
        d = C // self.heads
        q = self.query(self.norm(x)).reshape(B, self.heads, d, H * W).transpose(-1, -2)  # (B, heads, HW, d)
        k, v = self.key_value(context).reshape(B, -1, 2, self.heads, d).permute(2, 0, 3, 1, 4)  # (B, heads, L, d)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])
        return x + self.proj(out.transpose(-1, -2).reshape(B, C, H, W))
