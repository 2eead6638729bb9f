"""The losses of neural style transfer (Gatys et al. 2016): content as feature MSE, style as Gram-matrix MSE,
and total variation.

Content and style losses are relative: each layer's squared error divided by the mean square of its target, so
that one set of weights means the same for every feature network (VGG-19's activations and random filters'
differ by orders of magnitude) and every image size."""

from __future__ import annotations

import torch
from torch import Tensor

from .networks import mean_std

__all__ = ["gram", "content_loss", "style_loss", "total_variation", "relative_error", "symmetric_error",
           "mean_std_loss"]


class _Gram(torch.autograd.Function):
    """Gram matrices with a backward of one matmul in the features' own precision.

    Forward in fp32 (fp64 for fp64 features): products of bf16 activations are exact in fp32, and only a bf16
    output would round away the small differences the loss is made of. Backward: the gradient is (dG + dG^T) F / n,
    one matmul instead of autograd's two and their sum, in the features' dtype (the gradient returned has that
    precision anyway) and laid out channels-last, as the convolutions that receive it are. That matmul at 256 x 256
    with 128 channels (AMD EPYC, AVX-512-BF16, 2 threads): 37 ms in fp32, 7 ms in bf16; a Gatys evaluation with the
    random features went from about 290 to 155 ms."""

    @staticmethod
    def forward(ctx, features: Tensor) -> Tensor:
        b, c, h, w = features.shape
        ctx.save_for_backward(features)
        ctx.n = c * h * w
        flat = features.reshape(b, c, h * w).to(torch.promote_types(features.dtype, torch.float32))
        return torch.bmm(flat, flat.transpose(1, 2)) / ctx.n

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor) -> Tensor:
        (features,) = ctx.saved_tensors
        b, c, h, w = features.shape
        symmetric = ((grad + grad.transpose(1, 2)) / ctx.n).to(features.dtype)
        flat = features.reshape(b, c, h * w)
        return torch.bmm(flat.transpose(1, 2), symmetric).transpose(1, 2).reshape(b, c, h, w)


def gram(features: Tensor) -> Tensor:
    """Gram matrices (B, C, C) in fp32 of features (B, C, H, W), divided by C*H*W so that layers and sizes
    compare (bf16 sums of H*W products would lose the small differences the loss is made of)."""
    return _Gram.apply(features)


def relative_error(value: Tensor, target: Tensor) -> Tensor:
    """Mean squared difference divided by the target's mean square."""
    return torch.mean((value - target) ** 2) / torch.mean(target ** 2).clamp_min(1e-12)


def content_loss(features: dict[str, Tensor], targets: dict[str, Tensor]) -> Tensor:
    """Relative squared difference of the content layers' activations, averaged over layers."""
    return sum(relative_error(features[name].float(), target) for name, target in targets.items()) / len(targets)


def symmetric_error(value: Tensor, target: Tensor) -> Tensor:
    """Mean squared difference divided by the sum of both mean squares: 0 when equal, 1 for a zero value, at most
    2; unlike relative_error it does not favour shrinking the value towards zero."""
    return torch.mean((value - target) ** 2) / (torch.mean(value ** 2) + torch.mean(target ** 2)).clamp_min(1e-12)


def style_loss(features: dict[str, Tensor], target_grams: dict[str, Tensor], symmetric: bool = False) -> Tensor:
    """Relative squared difference of Gram matrices, averaged over the style layers; `symmetric`: relative to
    both Gram matrices (symmetric_error), for networks trained to convergence, where the plain relative error
    makes a black image (every Gram zero, error 1) cheaper than a photo with more texture than the style."""
    error = symmetric_error if symmetric else relative_error
    return sum(error(gram(features[name]), target) for name, target in target_grams.items()) / len(target_grams)


def total_variation(image: Tensor) -> Tensor:
    """Mean absolute difference of neighbouring pixels: a smoothness prior against high-frequency artefacts."""
    return (image[..., 1:, :] - image[..., :-1, :]).abs().mean() + (image[..., :, 1:] - image[..., :, :-1]).abs().mean()


def mean_std_loss(features: dict[str, Tensor], targets: dict[str, Tensor]) -> Tensor:
    """AdaIN's style loss (Huang and Belongie 2017): the relative squared differences of per-channel means and
    standard deviations, summed over mean and deviation, averaged over the layers of `targets` (features)."""
    total = 0.0
    for name, target in targets.items():
        (mean, std), (target_mean, target_std) = mean_std(features[name]), mean_std(target)
        total = total + relative_error(mean, target_mean) + relative_error(std, target_std)
    return total / len(targets)
