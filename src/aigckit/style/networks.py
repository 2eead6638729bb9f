"""The networks of feed-forward style transfer: Johnson et al.'s transformation network (fast, one style) and
Huang and Belongie's AdaIN with its decoder (arbitrary styles).

Johnson et al. 2016, "Perceptual losses for real-time style transfer and super-resolution", with instance
normalisation (Ulyanov et al. 2016) and upsample-then-convolve instead of transposed convolutions (Odena et al.
2016, against checkerboard artefacts). Huang and Belongie 2017, "Arbitrary style transfer in real-time with
adaptive instance normalization".
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["TransformerNet", "AdaINDecoder", "adain", "mean_std", "to_unit"]


def _conv(in_channels: int, out_channels: int, kernel: int, stride: int = 1) -> nn.Sequential:
    """Reflection-padded convolution (no zero borders for the statistics to notice)."""
    return nn.Sequential(nn.ReflectionPad2d(kernel // 2), nn.Conv2d(in_channels, out_channels, kernel, stride))


class _Residual(nn.Module):
    """conv-IN-ReLU-conv-IN plus the input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv(channels, channels, 3), nn.InstanceNorm2d(channels, affine=True), nn.ReLU(),
                                  _conv(channels, channels, 3), nn.InstanceNorm2d(channels, affine=True))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class TransformerNet(nn.Module):
    """Image -> stylised image of the same size: a 9x9 convolution, two stride-2 downsamplings, residual blocks,
    two nearest-upsample convolutions and a 9x9 convolution, as Johnson et al.; unlike theirs, the output is a
    change to the input (added before the tanh, the last convolution starting at zero), so the untrained network
    is the identity and training spends its steps on style rather than on learning to copy the content: on 2 CPU
    cores the plain network had not learned to copy its input after minutes."""

    def __init__(self, channels: int, base_channels: int = 32, residual_blocks: int = 5) -> None:
        super().__init__()
        b = base_channels

        def block(i: int, o: int, kernel: int, stride: int = 1) -> list[nn.Module]:
            return [_conv(i, o, kernel, stride), nn.InstanceNorm2d(o, affine=True), nn.ReLU()]

        self.down = nn.Sequential(*block(channels, b, 9), *block(b, 2 * b, 3, 2), *block(2 * b, 4 * b, 3, 2))
        self.residual = nn.Sequential(*[_Residual(4 * b) for _ in range(residual_blocks)])
        self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), *block(4 * b, 2 * b, 3),
                                nn.Upsample(scale_factor=2, mode="nearest"), *block(2 * b, b, 3), _conv(b, channels, 9))
        nn.init.zeros_(self.up[-1][1].weight)
        nn.init.zeros_(self.up[-1][1].bias)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, C, H, W) in [-1, 1], H and W multiples of 4 -> the same shape in [-1, 1]."""
        return torch.tanh(torch.atanh(x.float().clamp(-0.99, 0.99)) + self.up(self.residual(self.down(x))).float())


def mean_std(features: Tensor, eps: float = 1e-5) -> tuple[Tensor, Tensor]:
    """Per-channel mean and standard deviation over space: each (B, C, 1, 1), in fp32."""
    features = features.float()
    mean = features.mean(dim=(2, 3), keepdim=True)
    std = (features.var(dim=(2, 3), keepdim=True, unbiased=False) + eps).sqrt()
    return mean, std


def adain(content: Tensor, style: Tensor) -> Tensor:
    """Adaptive instance normalisation: the content features normalised per channel, then given the style
    features' per-channel mean and standard deviation."""
    content_mean, content_std = mean_std(content)
    style_mean, style_std = mean_std(style)
    return (content.float() - content_mean) / content_std * style_std + style_mean


class AdaINDecoder(nn.Module):
    """Features of an encoder (VGG-19's layout up to relu<k>_1) -> an image: the encoder mirrored, with nearest
    upsampling where it pooled and no normalisation (as Huang and Belongie)."""

    def __init__(self, encoder_widths: list[tuple[str, int]], channels: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        reversed_widths = list(reversed(encoder_widths))  # (name, width) from the deepest ReLU back to relu1_1
        for (name, width), (_, next_width) in zip(reversed_widths, reversed_widths[1:]):
            layers += [_conv(width, next_width, 3), nn.ReLU()]
            if name.endswith("_1"):  # the encoder pooled right before this layer's block: undo it
                layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
        layers.append(_conv(reversed_widths[-1][1], channels, 3))
        self.body = nn.Sequential(*layers)

    def forward(self, features: Tensor) -> Tensor:
        """Features (B, C_k, H / 2^(k-1), W / 2^(k-1)) -> images (B, channels, H, W) in [-1, 1]."""
        return torch.tanh(self.body(features))


def to_unit(images: Tensor) -> Tensor:
    """Images in [-1, 1] with 1 or 3 channels -> RGB in [0, 1], what the feature networks take."""
    unit = (images + 1) / 2
    return unit.expand(-1, 3, -1, -1) if unit.shape[1] == 1 else unit

