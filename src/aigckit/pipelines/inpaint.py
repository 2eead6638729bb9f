"""Image repair: rebuild the masked part of an image with a diffusion model, a VAE or a classical method.

White mask pixels mark what to repaint. Images of another size are resized to the model's and the result
is returned at the input's size; known pixels come back unchanged.

A family that can inpaint declares it: the "inpaint" capability, the method name users choose it by
(`inpaint_method`, e.g. "repaint") and the keyword options its `inpaint` takes (`inpaint_options`).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..errors import AigcError
from ..family import FAMILIES, FamilyBase
from ..imaging import from_pil, to_pil
from ..layers import check_class_labels
from .image import ImagePipeline

__all__ = ["inpaint", "inpaint_tensors", "classical_inpaint", "model_method", "methods", "CLASSICAL_METHODS"]

CLASSICAL_METHODS = ("telea", "navier-stokes")  # OpenCV's; they need no trained model

def model_method(family: FamilyBase) -> tuple[str, frozenset[str]]:
    """The inpainting method a family declares and the options its `inpaint` takes; AigcError if it cannot."""
    family.require("inpaint", "inpaint images")
    if family.inpaint_method is None:
        raise TypeError(f"the {family.name} family declares the inpaint capability but not its inpaint_method")
    return family.inpaint_method, family.inpaint_options


def methods() -> tuple[str, ...]:
    """Every inpainting method: one per registered family that inpaints, then the classical ones."""
    able = [FAMILIES.get(name) for name in FAMILIES if FAMILIES.get(name).supports("inpaint")]
    return (*(model_method(family)[0] for family in able), *CLASSICAL_METHODS)


def classical_inpaint(images: Tensor, known: Tensor, method: str = "telea", radius: int = 3) -> Tensor:
    """OpenCV's Telea (fast marching) or Navier-Stokes inpainting; images (B, C, H, W) in [-1, 1]."""
    import cv2

    flags = {"telea": cv2.INPAINT_TELEA, "navier-stokes": cv2.INPAINT_NS}
    if method not in flags:
        raise AigcError(f"unknown classical method {method!r}; choose one of {', '.join(flags)}")
    out = []
    for image, keep in zip(images, known):
        pixels = ((image.float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
        hole = ((1 - keep[0].float().cpu()) * 255).to(torch.uint8).numpy()
        filled = cv2.inpaint(np.ascontiguousarray(pixels), hole, radius, flags[method])
        filled = filled[:, :, None] if filled.ndim == 2 else filled
        out.append(torch.from_numpy(filled).permute(2, 0, 1).float() / 127.5 - 1)
    result = torch.stack(out).to(images.device)
    return known * images + (1 - known) * result


def _model_options(method: str, pipeline: ImagePipeline | None) -> frozenset[str]:
    """The options of model method `method` once it is known to be the run's family's; AigcError otherwise."""
    if method not in methods():
        raise AigcError(f"unknown method {method!r}; choose one of {', '.join(methods())}")
    if pipeline is None:
        raise AigcError(f"--method {method} needs a trained run; pass RUN_DIR or use --method telea")
    family_method, accepted = model_method(pipeline.family)
    if family_method != method:
        raise AigcError(f"{pipeline.config.name} models inpaint with --method {family_method}, not {method}; "
                        f"or use --method {' / '.join(CLASSICAL_METHODS)} without a run")
    return accepted


def inpaint_tensors(images: Tensor, known: Tensor, *, method: str, pipeline: ImagePipeline | None = None,
                    seed: int | None = None, labels: Tensor | None = None, **options) -> Tensor:
    """Inpaint (B, C, H, W) images in [-1, 1] where known (B, 1, H, W) is 0; model methods need `pipeline`."""
    if images.dim() != 4 or known.shape != (images.shape[0], 1, *images.shape[2:]):
        raise ValueError(f"images must be (B, C, H, W) and known (B, 1, H, W); got {tuple(images.shape)} "
                         f"and {tuple(known.shape)}")
    if method in CLASSICAL_METHODS:
        given = {"a run": pipeline, "labels": labels, **options}
        extra = [name for name, value in given.items() if value is not None]
        if extra:
            raise AigcError(f"--method {method} uses no trained model, so {', '.join(extra)} cannot apply; "
                            f"drop {'it' if len(extra) == 1 else 'them'}")
        return classical_inpaint(images, known, method)
    accepted = _model_options(method, pipeline)
    for option in options:
        if option not in accepted:
            known_options = ", ".join(sorted(accepted)) or "none"
            raise AigcError(f"{option} does not apply to --method {method} (its options: {known_options}); drop it")
    check_class_labels(labels, conditional=pipeline.config.conditional, num_classes=pipeline.config.num_classes)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    device = next(pipeline.model.parameters()).device
    with pipeline.precision.autocast(device):
        result = pipeline.family.inpaint(pipeline.model, images.to(device), known.to(device),
                                         labels=labels.to(device) if labels is not None else None,
                                         generator=generator, **options)
    return result.float().cpu()


def inpaint(image: Image.Image, mask: Image.Image, *, method: str | None = None,
            pipeline: ImagePipeline | None = None, seed: int | None = None, label: int | None = None,
            **options) -> Image.Image:
    """Repaint the white part of `mask` in `image`; returns an image of the input's size and mode.

    `method` defaults to the run's family's method, or telea without a run.
    """
    if mask.size != image.size:
        raise AigcError(f"the mask is {mask.size[0]}x{mask.size[1]} but the image is {image.size[0]}x{image.size[1]}; "
                        f"give a mask of the image's size")
    if method is None:
        method = model_method(pipeline.family)[0] if pipeline is not None else "telea"
    if method not in CLASSICAL_METHODS:
        _model_options(method, pipeline)  # a wrong method or run is refused before any image work
    hole = np.asarray(mask.convert("L")) > 127
    if not hole.any():
        raise AigcError("the mask has no white pixels, so there is nothing to repaint; paint the hole white")
    if hole.all():
        raise AigcError("the mask is white everywhere, so no pixel is known; keep part of the image black in the "
                        "mask (to generate whole images, use aigckit sample)")
    mode = "L" if image.mode in ("L", "1", "I", "F") else "RGB"
    image = image.convert(mode)
    if method in CLASSICAL_METHODS:
        x = from_pil(image, 1 if mode == "L" else 3)[None]
        known = torch.from_numpy(~hole)[None, None].float()
        labels = torch.tensor([label]) if label is not None else None
        return to_pil(inpaint_tensors(x, known, method=method, pipeline=pipeline, labels=labels, **options))[0]

    size, channels = pipeline.config.image_size, pipeline.config.channels
    x = from_pil(image.resize((size, size), Image.Resampling.BICUBIC), channels)[None]
    # a model pixel is known only if every input pixel under it is: the hole never shrinks
    coverage = np.asarray(Image.fromarray(hole.astype(np.uint8) * 255).resize((size, size), Image.Resampling.BOX))
    known = torch.from_numpy(coverage == 0)[None, None].float()
    if not known.any():
        raise AigcError(f"at the model's {size}x{size} resolution the hole covers every pixel; use a smaller hole")
    labels = torch.tensor([label]) if label is not None else None
    filled = to_pil(inpaint_tensors(x, known, method=method, pipeline=pipeline, seed=seed, labels=labels,
                                    **options))[0]
    filled = filled.convert(mode).resize(image.size, Image.Resampling.BICUBIC)
    return Image.composite(filled, image, Image.fromarray(hole.astype(np.uint8) * 255))
