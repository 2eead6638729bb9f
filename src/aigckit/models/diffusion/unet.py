"""The denoising UNet: residual blocks, group norm, sinusoidal time embedding, self-attention at low
resolution, and its condition: a class embedding (with a "null" class for classifier-free guidance), or a caption
read by a Transformer encoder over hashed words, its pooled features added to the time embedding and its tokens attended
to by cross-attention at the resolutions up to cross_attention_resolution (Imagen's and Stable Diffusion's
mechanism; the empty caption is the "null" condition). Class labels can be attended to the same way
(label_attention_resolution): each label a token, so that every place can read which digit to draw there.

It knows nothing of noise schedules: it maps (x_t, t, condition) to a tensor shaped like x_t.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...layers.text_encoder import CrossAttention, TextAdapter, TextEncoder
from .config import DiffusionConfig

__all__ = ["UNet", "timestep_embedding"]


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """Sinusoidal embedding of integer timesteps (B,) -> (B, dim), as in the Transformer's positions."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None]  # (B, half)
    return torch.cat([angles.cos(), angles.sin()], dim=1)


def _norm(channels: int) -> nn.GroupNorm:
    """Group norm with up to 32 groups of at least 4 channels (fewer when they must divide `channels`)."""
    return nn.GroupNorm(math.gcd(channels, min(32, max(1, channels // 4))), channels)


class ResBlock(nn.Module):
    """GN-SiLU-conv, add the (time + class) embedding, GN-SiLU-dropout-conv, plus a skip connection."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm1, self.conv1 = _norm(c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2, self.conv2 = _norm(c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.dropout = nn.Dropout(dropout)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity: stable early training
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(F.silu(emb))[:, :, None, None]  # (B, c_out, 1, 1) broadcast over H, W
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Multi-head self-attention over the H*W positions, through scaled_dot_product_attention."""

    def __init__(self, channels: int, head_dim: int = 32) -> None:
        super().__init__()
        self.heads = max(1, channels // head_dim)
        self.norm = _norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: Tensor) -> Tensor:
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3, self.heads, C // self.heads, H * W).unbind(1)
        q, k, v = (z.transpose(-1, -2) for z in (q, k, v))  # (B, heads, HW, head_dim)
        out = F.scaled_dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(d)) v
        return x + self.proj(out.transpose(-1, -2).reshape(B, C, H, W))


class UNet(nn.Module):
    """Levels of ResBlocks at halving resolutions, a middle with attention, and a mirrored way up with skips."""

    def __init__(self, config: DiffusionConfig) -> None:
        super().__init__()
        base, mults = config.base_channels, config.channel_mults
        emb_dim = 4 * base
        self.base, self.patch = base, config.patch_size
        pixels = config.channels * self.patch**2  # channels of a patch-folded image
        self.time_mlp = nn.Sequential(nn.Linear(base, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        # index num_classes is the "no label" class used with probability label_dropout during training
        self.class_embed = nn.Embedding(config.num_classes + 1, emb_dim) if config.conditional else None
        self.text = self.text_adapter = None
        if config.text_conditional:
            self.text = TextEncoder(config.text_width, config.text_layers, config.text_heads, config.text_buckets)
            self.text_embed = nn.Linear(config.text_width, emb_dim) if config.text_pooled else None
            if config.text_adapter_layers:
                self.text_adapter = TextAdapter(config.text_width, config.text_adapter_layers, config.text_heads)
        # the tokens cross-attention reads: the caption's, or one per class label
        cross, context_width, self.label_tokens = 0, config.text_width, None
        if config.text_conditional:
            cross = config.cross_attention_resolution
        elif config.label_attention_resolution:  # (the config requires model.conditional for it)
            cross, context_width = config.label_attention_resolution, emb_dim
            self.label_tokens = nn.Embedding(config.num_classes + 1, emb_dim)
        self.conv_in = nn.Conv2d(pixels, base, 3, padding=1)

        self.down = nn.ModuleList()
        skips, c, size = [base], base, config.image_size // self.patch
        for level, mult in enumerate(mults):
            for _ in range(config.num_res_blocks):
                block = nn.ModuleList([ResBlock(c, base * mult, emb_dim, config.dropout)])
                c = base * mult
                if size <= config.attention_resolution:
                    block.append(SelfAttention(c))
                if size <= cross:
                    block.append(CrossAttention(c, context_width, _norm(c)))
                self.down.append(block)
                skips.append(c)
            if level < len(mults) - 1:
                self.down.append(nn.ModuleList([nn.Conv2d(c, c, 3, stride=2, padding=1)]))  # H -> H/2
                skips.append(c)
                size //= 2

        self.mid = nn.ModuleList([ResBlock(c, c, emb_dim, config.dropout), SelfAttention(c),
                                  *([CrossAttention(c, context_width, _norm(c))] if cross else []),
                                  ResBlock(c, c, emb_dim, config.dropout)])

        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(mults))):
            for _ in range(config.num_res_blocks + 1):
                block = nn.ModuleList([ResBlock(c + skips.pop(), base * mult, emb_dim, config.dropout)])
                c = base * mult
                if size <= config.attention_resolution:
                    block.append(SelfAttention(c))
                if size <= cross:
                    block.append(CrossAttention(c, context_width, _norm(c)))
                self.up.append(block)
            if level > 0:
                self.up.append(nn.ModuleList([nn.Upsample(scale_factor=2, mode="nearest"),
                                              nn.Conv2d(c, c, 3, padding=1)]))  # H -> 2H
                size *= 2
        self.out = nn.Sequential(_norm(c), nn.SiLU(), nn.Conv2d(c, pixels, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, x: Tensor, t: Tensor, labels: Tensor | None = None) -> Tensor:
        """x: (B, C, H, W) noisy images; t: (B,) integer timesteps; labels: the condition, (B,) class ids
        (num_classes meaning none) or (B, L) caption bytes (all zero meaning none)."""
        emb = self.time_mlp(timestep_embedding(t, self.base))
        if self.class_embed is not None:
            emb = emb + self.class_embed(labels)
        tokens = self.label_context(labels) if self.label_tokens is not None else None
        if self.text is not None:
            context, mask, pooled = self.text(labels)
            if self.text_embed is not None:
                emb = emb + self.text_embed(pooled)
            if self.text_adapter is not None:
                context = self.text_adapter(context, mask)
            tokens = (context, mask)
        h = self.conv_in(F.pixel_unshuffle(x, self.patch) if self.patch > 1 else x)
        hs = [h]
        for block in self.down:
            h = self._run(block, h, emb, tokens)
            hs.append(h)
        h = self._run(self.mid, h, emb, tokens)
        for block in self.up:
            if isinstance(block[0], ResBlock):
                h = torch.cat([h, hs.pop()], dim=1)  # the skip connection from the same resolution
            h = self._run(block, h, emb, tokens)
        out = self.out(h)
        return F.pixel_shuffle(out, self.patch) if self.patch > 1 else out

    def label_context(self, labels: Tensor) -> tuple[Tensor, Tensor]:
        """Class labels (B,) or (B, K) -> the tokens cross-attention reads, (B, K, E), and their mask (all True):
        one token per label, the "none" class included (a dropped condition is K "none" tokens)."""
        tokens = self.label_tokens(labels.reshape(len(labels), -1))
        return tokens, torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)

    @staticmethod
    def _run(block: nn.ModuleList, h: Tensor, emb: Tensor, tokens: tuple[Tensor, Tensor] | None) -> Tensor:
        for layer in block:
            if isinstance(layer, ResBlock):
                h = layer(h, emb)
            elif isinstance(layer, CrossAttention):
                h = layer(h, *tokens)
            else:
                h = layer(h)
        return h
