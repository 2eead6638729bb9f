"""Style transfer by optimisation (Gatys et al. 2016, "Image style transfer using convolutional neural
networks"): the image itself is optimised so that its features match the content image's and its Gram matrices
the style image's. Trains nothing; needs only a feature network (aigckit.style.features).

Colour preservation (Gatys et al. 2017, "Controlling perceptual factors in neural style transfer"): the transfer
runs on luminance only, the style's luminance matched to the content's mean and spread, and the result takes
the content's chrominance.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from ..errors import AigcError
from ..precision import resolve_precision
from ..style.features import FeatureNetwork, feature_network
from ..style.losses import content_loss, gram, style_loss, total_variation

__all__ = ["StyleResult", "stylize_gatys", "stylize_with_run", "stylize_with_pipeline", "learned_style", "prepare_pair",
           "OPTIMIZERS"]

OPTIMIZERS = ("lbfgs", "adam")
ADAM_LR = 0.02  # pixels in [0, 1]
# with relative losses (aigckit.style.losses) the style term starts about 100x the content term and the content
# term keeps the layout: chosen by eye on scikit-image's astronaut in the coffee's style at 128 px


@dataclass
class StyleResult:
    """A stylised image and what made it (method, features, weights, losses, time)."""

    image: Image.Image
    info: dict[str, Any] = field(default_factory=dict)


def _to_tensor(image: Image.Image) -> Tensor:
    """An RGB PIL image -> (1, 3, H, W) float in [0, 1]."""
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)[None].contiguous()


def _upsample(x: Tensor, size: tuple[int, int]) -> Tensor:
    """(1, C, h, w) -> (1, C, *size), bicubic."""
    return F.interpolate(x, size=size, mode="bicubic", align_corners=False)


def _to_image(x: Tensor) -> Image.Image:
    """(1, 3, H, W) in [0, 1] -> an RGB PIL image."""
    pixels = (x[0].detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(pixels)


def _luminance(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("YCbCr"), dtype=np.float32)[..., 0]


def prepare_pair(content: Image.Image, style: Image.Image, size: int,
                 preserve_color: bool) -> tuple[Image.Image, Image.Image]:
    """The content resized so that its longer side is `size` (aspect kept), and the style resized to the same
    size, both RGB; with `preserve_color`, their luminance as grey RGB (the style's matched to the content's
    mean and standard deviation)."""
    if size < 16:
        raise AigcError(f"--size must be at least 16 pixels, got {size}")
    scale = size / max(content.size)
    width, height = max(1, round(content.width * scale)), max(1, round(content.height * scale))
    content = content.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)
    style = style.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)
    if preserve_color:
        content_y, style_y = _luminance(content), _luminance(style)
        style_y = (style_y - style_y.mean()) / (style_y.std() + 1e-6) * content_y.std() + content_y.mean()
        content, style = (Image.fromarray(np.clip(y, 0, 255).round().astype(np.uint8)).convert("RGB")
                          for y in (content_y, style_y))
    return content, style


def _with_content_colour(result: Image.Image, content: Image.Image) -> Image.Image:
    """The result's luminance with the content's chrominance (content resized to the result's size)."""
    y = result.convert("YCbCr").getchannel("Y")
    _, cb, cr = content.convert("RGB").resize(result.size, Image.Resampling.LANCZOS).convert("YCbCr").split()
    return Image.merge("YCbCr", (y, cb, cr)).convert("RGB")


class _BudgetSpent(Exception):
    """Raised in L-BFGS's closure when a stage's evaluations are spent and its line search asks for another."""


def stylize_gatys(content: Image.Image, style: Image.Image, *, size: int = 256, steps: int = 300,
                  optimizer: str = "lbfgs", content_weight: float = 1.0, style_weight: float = 1e3,
                  tv_weight: float = 0.0, preserve_color: bool = False, features: FeatureNetwork | None = None,
                  precision: str = "auto", coarse_steps: int = 0,
                  on_step: Callable[[int, dict[str, float], Callable[[], Image.Image]], None] | None = None,
                  ) -> StyleResult:
    """Render `content` in the style of `style` by optimising the image (started from the content) with L-BFGS for
    `steps` evaluations of the losses, or Adam for `steps` iterations; with `coarse_steps`, that many first at half
    the size, the result upsampled, with the content's finer detail added, to start the full size from (coarse to
    fine: a half-size evaluation costs about a quarter). `on_step(step, losses, image)` is called after every one
    (`image()` gives the current image; `losses["size"]` is the longer side it was computed at). Grey content gives
    a grey result. The output has the content's aspect ratio, its longer side `size` (stated in the info)."""
    if optimizer not in OPTIMIZERS:
        raise AigcError(f"unknown optimizer {optimizer!r}; use {' or '.join(OPTIMIZERS)}")
    if steps < 1:
        raise AigcError(f"--steps must be at least 1, got {steps}")
    if coarse_steps < 0:
        raise AigcError(f"--coarse-steps must be 0 or more, got {coarse_steps}")
    for name, value in (("content-weight", content_weight), ("tv-weight", tv_weight),
                        ("style-weight", style_weight)):
        if not np.isfinite(value) or value < 0:
            raise AigcError(f"--{name} must be a number >= 0, got {value}")
    started = time.perf_counter()
    network = features if features is not None else feature_network()
    chosen = resolve_precision(precision, "cpu")
    original_size, grey = content.size, content.mode in ("L", "LA", "I", "I;16", "1")
    network = network.eval().requires_grad_(False).to(memory_format=torch.channels_last)
    layers = network.content_layers + network.style_layers

    def forward(x: Tensor) -> dict[str, Tensor]:
        with chosen.autocast("cpu"):
            return network(x.contiguous(memory_format=torch.channels_last), layers)

    history: list[dict[str, float]] = []

    def optimise(start: Tensor, content_rgb: Image.Image, style_rgb: Image.Image, evaluations: int,
                 stage_size: int) -> tuple[Tensor, dict[str, float]]:
        """The image optimised from `start` against this pair's targets for `evaluations` (Adam: iterations), and
        its losses (Adam: the last evaluation's)."""
        with torch.no_grad():  # the targets, once per size
            content_targets = {k: v.float() for k, v in forward(_to_tensor(content_rgb)).items()
                               if k in network.content_layers}
            style_targets = {k: gram(v) for k, v in forward(_to_tensor(style_rgb)).items()
                             if k in network.style_layers}
        x = start.requires_grad_(True)
        losses: dict[str, float] = {}

        def objective() -> Tensor:
            activations = forward(x)
            parts = {"content": content_weight * content_loss(activations, content_targets),
                     "style": style_weight * style_loss(activations, style_targets),
                     "tv": tv_weight * total_variation(x)}
            total = parts["content"] + parts["style"] + parts["tv"]
            losses.update({k: float(v.detach()) for k, v in parts.items()}, total=float(total.detach()),
                          size=stage_size)
            return total

        def record() -> None:
            history.append(dict(losses))
            if on_step is not None:
                on_step(len(history), dict(losses), lambda: _to_image(x))

        if optimizer == "adam":
            adam = torch.optim.Adam([x], lr=ADAM_LR)
            for _ in range(evaluations):
                adam.zero_grad(set_to_none=True)
                objective().backward()
                adam.step()
                with torch.no_grad():
                    x.clamp_(0, 1)
                record()
        else:
            # a step is one evaluation of the losses, as the PyTorch tutorial counts them; one step() runs them all.
            # Its line search may ask for more than max_eval: the closure stops it at the budget, and the result is
            # the evaluated image of least loss (the last accepted iterate unless a trial point did better)
            lbfgs = torch.optim.LBFGS([x], lr=1.0, max_iter=evaluations, max_eval=evaluations, history_size=50,
                                      tolerance_grad=0.0, tolerance_change=0.0, line_search_fn="strong_wolfe")
            first, best = len(history), (math.inf, x.detach().clone(), {})

            def closure() -> Tensor:
                nonlocal best
                if len(history) - first >= evaluations:
                    raise _BudgetSpent
                lbfgs.zero_grad(set_to_none=True)
                loss = objective()
                loss.backward()
                record()
                if losses["total"] < best[0]:
                    best = (losses["total"], x.detach().clone(), dict(losses))
                return loss

            try:
                lbfgs.step(closure)
            except _BudgetSpent:
                pass
            return best[1].clamp_(0, 1), best[2]
        return x.detach().clamp_(0, 1), history[-1]

    content_rgb, style_rgb = prepare_pair(content, style, size, preserve_color)
    x = _to_tensor(content_rgb)
    if coarse_steps:
        coarse_size = max(16, size // 2)
        coarse_content, coarse_style = prepare_pair(content, style, coarse_size, preserve_color)
        coarse_start = _to_tensor(coarse_content)
        coarse, _ = optimise(coarse_start.clone(), coarse_content, coarse_style, coarse_steps, coarse_size)
        # the full size starts from the coarse result plus the content's detail band, which the coarse stage never
        # saw (the content minus its half-size copy, both upsampled alike): the full size then reaches
        # benchmarks/style_transfer.py's target loss after 146 evaluations instead of 162
        detail = x - _upsample(coarse_start, x.shape[-2:])
        x = (_upsample(coarse, x.shape[-2:]) + detail).clamp_(0, 1)
    x, final_losses = optimise(x, content_rgb, style_rgb, steps, size)

    result = _to_image(x)
    if preserve_color:
        result = _with_content_colour(result, content)
    if grey:
        result = result.convert("L")
    info = {"method": "gatys", "features": network.description, "optimizer": optimizer, "steps": steps,
            "coarse_steps": coarse_steps, "size": list(result.size), "content_size": list(original_size),
            "resized": "content resized so that its longer side is the size, style resized to match",
            "content_weight": content_weight, "style_weight": style_weight, "tv_weight": tv_weight,
            "preserve_color": preserve_color, "precision": chosen.name,
            "first_losses": history[coarse_steps], "final_losses": final_losses,  # both at full size
            "seconds": round(time.perf_counter() - started, 2)}
    return StyleResult(result, info)


def _model_input(image: Image.Image, size: int, channels: int, multiple: int) -> tuple[Tensor, tuple[int, int]]:
    """`image` resized so that its longer side is `size`, reflection-padded to multiples of `multiple`: (1, C, H, W)
    in [-1, 1], and the resized (width, height) to crop the output back to."""
    scale = size / max(image.size)
    width, height = max(1, round(image.width * scale)), max(1, round(image.height * scale))
    image = image.convert("RGB" if channels == 3 else "L").resize((width, height), Image.Resampling.LANCZOS)
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32).reshape(height, width, channels))
    x = pixels.permute(2, 0, 1)[None] / 127.5 - 1
    pad_h, pad_w = -height % multiple, -width % multiple
    if pad_h or pad_w:
        mode = "reflect" if pad_h < height and pad_w < width else "replicate"
        x = torch.nn.functional.pad(x, (0, pad_w, 0, pad_h), mode=mode)
    return x, (width, height)


def _output_image(x: Tensor, width: int, height: int) -> Image.Image:
    pixels = ((x[0, :, :height, :width].float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    pixels = pixels.permute(1, 2, 0).numpy()
    return Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)


def stylize_with_run(run_dir: str | Any, content: Image.Image, style: Image.Image | None = None, *, size: int = 256,
                     alpha: float = 1.0, preserve_color: bool = False, precision: str = "auto") -> StyleResult:
    """`stylize_with_pipeline` on the newest checkpoint of a stylizer run."""
    from .image import load

    started = time.perf_counter()
    result = stylize_with_pipeline(load(run_dir, precision=precision), content, style, size=size, alpha=alpha,
                                   preserve_color=preserve_color)
    result.info.update(run=str(run_dir), seconds_with_loading=round(time.perf_counter() - started, 3))
    return result


def stylize_with_pipeline(pipeline: Any, content: Image.Image, style: Image.Image | None = None, *, size: int = 256,
                          alpha: float = 1.0, preserve_color: bool = False) -> StyleResult:
    """Stylise `content` in one forward pass of a trained stylizer: a fast-style network (its own style; `style`
    must be None) or AdaIN (`style` required, `alpha` from 0: the content's statistics, to 1: the style's). The
    content is resized so that its longer side is `size` (aspect kept; padded by reflection to what the network
    needs and cropped back); AdaIN's style is resized to the same size. Grey content gives a grey result."""
    started = time.perf_counter()
    if pipeline.family.name != "style":
        raise AigcError(f"{pipeline.config.name} models are not stylizers; train one with "
                        f"configs/fast-style-photos.yaml or configs/adain-photos.yaml, or use --method gatys")
    config, model = pipeline.config, pipeline.model
    if size < 16:
        raise AigcError(f"--size must be at least 16 pixels, got {size}")
    if config.name == "fast-style" and style is not None:
        raise AigcError("a fast-style network has learned its one style; drop --style (or use an adain run)")
    if config.name == "adain" and style is None:
        raise AigcError("an adain network needs the style image: pass --style")
    if not 0 <= alpha <= 1:
        raise AigcError(f"--alpha must be between 0 and 1, got {alpha}")
    grey = content.mode in ("L", "LA", "I", "I;16", "1")
    multiple = model.size_multiple()
    x, (width, height) = _model_input(content, size, config.channels, multiple)
    options: dict[str, Any] = {"content": x}
    if style is not None:
        options.update(style=_model_input(style.resize((width, height), Image.Resampling.LANCZOS), size,
                                          config.channels, multiple)[0], alpha=alpha)
    with torch.no_grad():
        output = pipeline.sample(1, **options)
    result = _output_image(output, width, height)
    if preserve_color and config.channels == 3:
        result = _with_content_colour(result, content)
    if grey and result.mode != "L":
        result = result.convert("L")
    info = {"method": "fast" if config.name == "fast-style" else "adain", "checkpoint": str(pipeline.checkpoint),
            "features": model.features_used, "size": list(result.size),
            "content_size": list(content.size), "resized": "content resized so that its longer side is the size"
            + ("; style resized to match" if style is not None else ""), "preserve_color": preserve_color,
            "precision": pipeline.precision.name, "seconds": round(time.perf_counter() - started, 3)}
    if config.name == "adain":
        info["alpha"] = alpha
    return StyleResult(result, info)


def learned_style(pipeline: Any) -> Image.Image:
    """The style image a fast-style network learned (stored in its weights), as a PIL image."""
    style = pipeline.model.style_image
    return _output_image(style, style.shape[-1], style.shape[-2])
