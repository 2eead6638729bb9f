"""The space-time UNet for video diffusion: the image UNet's blocks run on every frame (frames folded into the
batch), and after each residual stage a temporal layer mixes the frames at every position: a 1-D convolution over
T, plus self-attention over T at the low resolutions. This is the factorised design of Video Diffusion Models (Ho
et al. 2022, https://arxiv.org/abs/2204.03458) and Make-A-Video (https://arxiv.org/abs/2209.14792), whose temporal
layers start as the identity (zero-initialised outputs) so that the network starts as an image model.

Attention over T at one position cannot follow a digit that moves to another: at the smallest resolutions it can
instead be joint over T x H x W (config.spacetime_attention_resolution), every position of every frame attending
to all the others, as in the joint space-time attention of video transformers (ViViT's first model,
https://arxiv.org/abs/2103.15691); its cost grows as (T H W)^2, so it belongs where H x W is a few cells.

The condition is the clip's K class labels (one per digit): the sum of their class embeddings, each from the image
UNet's class table whose extra "null" class stands for "no label" (classifier-free guidance drops all K at once),
and, with config.label_attention_resolution, the K labels as tokens every position of every frame attends to.

It knows nothing of noise schedules: it maps (x_t, t, labels) to a tensor shaped like x_t, (B, T, C, H, W). The
timestep is one per clip (B,) or one per frame (B, T): a frame given clean (video prediction) is at t = 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import DiffusionConfig
from .unet import ResBlock, UNet, _norm, timestep_embedding

__all__ = ["VideoUNet", "TemporalMixing"]


def frame_positions(frames: int, dim: int, device: torch.device) -> Tensor:
    """Sinusoidal embedding of the frame index 0..T-1, (T, dim): where in the clip each frame sits."""
    return timestep_embedding(torch.arange(frames, device=device), dim)


def spacetime_positions(frames: int, height: int, width: int, dim: int, device: torch.device) -> Tensor:
    """(T*H*W, dim), tokens in (t, h, w) order: the frame's embedding plus the row's and the column's, each of
    those two on half the channels."""
    half = dim // 2
    rows = timestep_embedding(torch.arange(height, device=device), half)
    cols = timestep_embedding(torch.arange(width, device=device), dim - half)
    where = torch.cat([rows[:, None].expand(height, width, half), cols[None].expand(height, width, dim - half)], -1)
    return (frame_positions(frames, dim, device)[:, None, None] + where[None]).reshape(-1, dim)


class TemporalMixing(nn.Module):
    """Mixes a (B*T, C, H, W) feature map across its T frames at every (h, w): GN, a 1-D convolution over T and,
    optionally, multi-head self-attention over T (or, `spacetime`, over all T x H x W positions of the clip); each
    branch's output is zero-initialised, so it starts as the identity."""

    def __init__(self, channels: int, *, attention: bool, spacetime: bool = False, kernel_size: int = 3,
                 head_dim: int = 32) -> None:
        super().__init__()
        self.conv_norm = _norm(channels)
        self.conv = nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)
        self.heads = max(1, channels // head_dim)
        self.spacetime = spacetime
        self.attn_norm = _norm(channels) if attention or spacetime else None
        if self.attn_norm is not None:
            self.qkv = nn.Linear(channels, 3 * channels)
            self.proj = nn.Linear(channels, channels)
            nn.init.zeros_(self.proj.weight)
            nn.init.zeros_(self.proj.bias)

    def forward(self, h: Tensor, frames: int) -> Tensor:
        """h: (B*T, C, H, W), the frames of each clip consecutive."""
        BT, C, H, W = h.shape
        B = BT // frames
        x = h.view(B, frames, C, H, W).permute(0, 3, 4, 2, 1).reshape(B * H * W, C, frames)  # (BHW, C, T)
        x = x + self.conv(F.silu(self.conv_norm(x)))  # each position's C-channel signal over time
        if self.spacetime:
            tokens = x.view(B, H * W, C, frames).permute(0, 2, 3, 1).reshape(B, C, frames * H * W)  # (t, h, w) order
            y = self.attn_norm(tokens).transpose(1, 2) + spacetime_positions(frames, H, W, C, x.device).to(x.dtype)
            out = self._attend(y)  # (B, THW, C)
            x = x + out.view(B, frames, H * W, C).permute(0, 2, 3, 1).reshape(B * H * W, C, frames)
        elif self.attn_norm is not None:
            y = self.attn_norm(x).transpose(1, 2)  # (BHW, T, C)
            y = y + frame_positions(frames, C, x.device).to(y.dtype)  # attention alone is blind to frame order
            x = x + self._attend(y).transpose(1, 2)
        return x.view(B, H, W, C, frames).permute(0, 4, 3, 1, 2).reshape(BT, C, H, W)

    def _attend(self, y: Tensor) -> Tensor:
        """Multi-head self-attention over the L tokens of each sequence of y (N, L, C), projected: (N, L, C)."""
        N, L, C = y.shape
        q, k, v = self.qkv(y).view(N, L, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)  # (N, heads, L, head_dim)
        return self.proj(out.transpose(1, 2).reshape(N, L, C))


class VideoUNet(nn.Module):
    """The image UNet (config without frames: the same blocks, the same weights' names under `spatial.`) run per
    frame, with a TemporalMixing after every residual block of the way down, the middle and the way up (none for
    one-frame clips)."""

    def __init__(self, config: DiffusionConfig) -> None:
        super().__init__()
        if config.frames is None:
            raise ValueError("VideoUNet needs config.frames")
        self.frames = config.frames
        self.spatial = UNet(config)
        self.attention_size = config.temporal_attention_resolution
        self.spacetime_size = config.spacetime_attention_resolution
        size = config.image_size // config.patch_size

        def temporal(block: nn.ModuleList, size: int) -> nn.Module:
            # a down- or upsampling step has nothing to mix, nor has a one-frame clip: that network is the image
            # UNet alone, whose weights can start a longer clips' model (DiffusionConfig.init_from)
            if not isinstance(block[0], ResBlock) or self.frames == 1:
                return nn.Identity()
            channels = block[0].conv2.out_channels
            return self._mixing(channels, size)

        # the spatial size at each block follows the UNet's: halved after each downsampling, doubled after upsampling
        self.down_time = nn.ModuleList()
        for block in self.spatial.down:
            self.down_time.append(temporal(block, size))
            if isinstance(block[0], nn.Conv2d):
                size //= 2
        mid_channels = self.spatial.mid[-1].conv2.out_channels
        self.mid_time = self._mixing(mid_channels, size) if self.frames > 1 else nn.Identity()
        self.up_time = nn.ModuleList()
        for block in self.spatial.up:
            self.up_time.append(temporal(block, size))
            if isinstance(block[0], nn.Upsample):
                size *= 2

    def _mixing(self, channels: int, size: int) -> TemporalMixing:
        return TemporalMixing(channels, attention=size <= self.attention_size, spacetime=size <= self.spacetime_size)

    def forward(self, x: Tensor, t: Tensor, labels: Tensor | None = None) -> Tensor:
        """x: (B, T, C, H, W) noisy clips; t: (B,) integer timesteps, or (B, T) one per frame; labels: (B, K) class ids
        per clip (num_classes meaning none), for a conditional model."""
        net = self.spatial
        B, T, C, H, W = x.shape
        if T != self.frames:
            raise ValueError(f"the network was built for {self.frames} frames, got clips of {T}")
        t = t[:, None].expand(B, T) if t.ndim == 1 else t
        emb = net.time_mlp(timestep_embedding(t.reshape(B * T), net.base))  # (B*T, E): each frame its noise level
        if net.class_embed is not None:
            # (B, K, E) -> (B, E): the clip's digits together, shared by every frame of the clip
            emb = emb + net.class_embed(labels).sum(1).repeat_interleave(T, dim=0)
        tokens = None
        if net.label_tokens is not None:  # the clip's label tokens, read by every frame
            tokens = tuple(z.repeat_interleave(T, dim=0) for z in net.label_context(labels))
        frames = x.reshape(B * T, C, H, W)  # frames into the batch
        h = net.conv_in(F.pixel_unshuffle(frames, net.patch) if net.patch > 1 else frames)
        hs = [h]
        for block, mix in zip(net.down, self.down_time):
            h = net._run(block, h, emb, tokens)
            h = mix(h, T) if isinstance(mix, TemporalMixing) else h
            hs.append(h)
        h = net._run(net.mid, h, emb, tokens)
        h = self.mid_time(h, T) if isinstance(self.mid_time, TemporalMixing) else h
        for block, mix in zip(net.up, self.up_time):
            if isinstance(block[0], ResBlock):
                h = torch.cat([h, hs.pop()], dim=1)  # the skip connection from the same resolution
            h = net._run(block, h, emb, tokens)
            h = mix(h, T) if isinstance(mix, TemporalMixing) else h
        out = net.out(h)
        out = F.pixel_shuffle(out, net.patch) if net.patch > 1 else out
        return out.view(B, T, C, H, W)

