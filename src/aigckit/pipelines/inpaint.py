"""Image repair: rebuild the masked part of an image with a diffusion model, a VAE or a classical method.

White mask pixels mark what to repaint. Images of another size are resized to the model's and the result
is returned at the input's size; known pixels come back unchanged.
"""

from __future__ import annotations

import inspect

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..errors import AigcError
from ..imaging import from_pil, to_pil
from .image import ImagePipeline

__all__ = ["inpaint", "inpaint_tensors", "classical_inpaint", "METHODS"]

MODEL_METHODS = {"diffusion": "repaint", "vae": "latent"}
METHODS = ("repaint", "latent", "telea", "navier-stokes")


def classical_inpaint(images: Tensor, known: Tensor, method: str = "telea", radius: int = 3) -> Tensor:
    """OpenCV's Telea (fast marching) or Navier-Stokes inpainting; images (B, C, H, W) in [-1, 1]."""
    import cv2

    flag = {"telea": cv2.INPAINT_TELEA, "navier-stokes": cv2.INPAINT_NS}[method]
    out = []
    for image, keep in zip(images, known):
        pixels = ((image.float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
        hole = ((1 - keep[0].float().cpu()) * 255).to(torch.uint8).numpy()
        filled = cv2.inpaint(np.ascontiguousarray(pixels), hole, radius, flag)
        filled = filled[:, :, None] if filled.ndim == 2 else filled
        out.append(torch.from_numpy(filled).permute(2, 0, 1).float() / 127.5 - 1)
    result = torch.stack(out).to(images.device)
    return known * images + (1 - known) * result


def inpaint_tensors(images: Tensor, known: Tensor, *, method: str, pipeline: ImagePipeline | None = None,
                    seed: int | None = None, labels: Tensor | None = None, **options) -> Tensor:
    """Inpaint (B, C, H, W) images in [-1, 1] where known (B, 1, H, W) is 0; model methods need `pipeline`."""
    if method in ("telea", "navier-stokes"):
        return classical_inpaint(images, known, method)
    if pipeline is None:
        raise AigcError(f"--method {method} needs a trained run; pass RUN_DIR or use --method telea")
    family_method = MODEL_METHODS.get(pipeline.family.name)
    if family_method != method:
        supported = f"this {pipeline.family.name} model supports --method {family_method}" if family_method else \
            f"{pipeline.family.name} models cannot inpaint"
        raise AigcError(f"{supported}; or use --method telea / navier-stokes")
    accepted = inspect.signature(pipeline.family.inpaint).parameters
    for option in options:
        if option not in accepted:
            raise AigcError(f"{option} does not apply to --method {method}; drop it")
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    device = next(pipeline.model.parameters()).device
    if labels is not None and pipeline.num_classes:
        labels = labels.to(device)
    else:
        labels = None
    result = pipeline.family.inpaint(pipeline.model, images.to(device), known.to(device), labels=labels,
                                     generator=generator, **options)
    return result.float().cpu()


def inpaint(image: Image.Image, mask: Image.Image, *, method: str | None = None,
            pipeline: ImagePipeline | None = None, seed: int | None = None, label: int | None = None,
            **options) -> Image.Image:
    """Repaint the white part of `mask` in `image`; returns an image of the input's size and mode."""
    if mask.size != image.size:
        raise AigcError(f"the mask is {mask.size[0]}x{mask.size[1]} but the image is {image.size[0]}x{image.size[1]}; "
                        f"give a mask of the image's size")
    method = method or (MODEL_METHODS.get(pipeline.family.name) if pipeline else "telea") or "telea"
    if method not in METHODS:
        raise AigcError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    mode = "L" if image.mode in ("L", "1", "I", "F") else "RGB"
    image = image.convert(mode)
    hole = np.asarray(mask.convert("L")) > 127
    if not hole.any():
        return image.copy()
    if method in ("telea", "navier-stokes"):
        x = from_pil(image, 1 if mode == "L" else 3)[None]
        known = torch.from_numpy(~hole)[None, None].float()
        return to_pil(inpaint_tensors(x, known, method=method))[0].convert(mode)

    size, channels = pipeline.config.image_size, pipeline.config.channels
    x = from_pil(image.resize((size, size), Image.Resampling.BICUBIC), channels)[None]
    # a model pixel is known only if every input pixel under it is: the hole never shrinks
    coverage = np.asarray(Image.fromarray(hole.astype(np.uint8) * 255).resize((size, size), Image.Resampling.BOX))
    known = torch.from_numpy(coverage == 0)[None, None].float()
    labels = torch.tensor([label]) if label is not None else None
    filled = to_pil(inpaint_tensors(x, known, method=method, pipeline=pipeline, seed=seed, labels=labels,
                                    **options))[0]
    filled = filled.convert(mode).resize(image.size, Image.Resampling.BICUBIC)
    return Image.composite(filled, image, Image.fromarray(hole.astype(np.uint8) * 255))
