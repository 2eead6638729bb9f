"""CLIP-score and image-caption retrieval, measured with a clip run of aigckit.

The extractor is our own contrastive model (models/clip), trained on the captioned data, not OpenAI's CLIP (whose
weights are not at hand and which never saw 32x32 canvases); `clip_extractor` names the checkpoint it loaded,
by path and sha256, so that a score says which model gave it. Scores from different clip checkpoints are not
comparable with each other.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..checkpoint import checkpoint_sha256, from_pretrained, latest_checkpoint
from ..errors import AigcError
from ..family import FAMILIES
from ..models.clip.family import caption_tensor
from ..models.clip.networks import CLIP
from ..models.clip.retrieval import clip_score_of, retrieval_scores

__all__ = ["load_clip", "clip_extractor", "clip_score", "retrieval_accuracy", "swap_preference"]

Captions = Tensor | np.ndarray | Sequence[str]


def load_clip(run_dir: str | Path, *, device: str | torch.device = "cpu", use_ema: bool = True) -> CLIP:
    """The newest checkpoint of a clip run (or one checkpoint directory), in eval mode, its source recorded."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise AigcError(f"{run_dir} is not a run directory; give the folder aigckit train wrote for a clip config "
                        f"such as configs/clip-captioned-mnist.yaml")
    checkpoint = latest_checkpoint(run_dir)
    family = json.loads((checkpoint / "config.json").read_text(encoding="utf-8")).get("family")
    if family != "clip":
        raise AigcError(f"{run_dir} holds a {family} model, not a clip model; train one with "
                        f"configs/clip-captioned-mnist.yaml and give its run directory")
    model = from_pretrained(checkpoint, use_ema=use_ema).to(device)
    digest = checkpoint_sha256(checkpoint)
    model.source = {"extractor": f"aigckit-clip-{digest[:12]}", "checkpoint": str(checkpoint),
                    "checkpoint_sha256": digest}
    return model


def clip_extractor(model: CLIP) -> dict[str, Any]:
    """What scored: the clip checkpoint (name, path, sha256, as load_clip recorded) and its input size."""
    _check_model(model)
    c = model.config
    source = model.source or {"extractor": "aigckit-clip (not loaded from a checkpoint)"}
    return {**source, "image_size": c.image_size, "channels": c.channels, "embed_dim": c.embed_dim}


def clip_score(model: CLIP, images: Tensor, captions: Captions) -> float:
    """CLIP-score of images (N, C, S, S) in [-1, 1] with their captions (N strings or (N, L) bytes): 100 * mean of
    max(cos, 0) (Hessel et al. 2021 with the scale of torchmetrics, 100, not their w = 2.5)."""
    images_embedded, captions_embedded = _embed(model, images, captions)
    return clip_score_of(images_embedded, captions_embedded)


def retrieval_accuracy(model: CLIP, images: Tensor, captions: Captions, k: Sequence[int] = (1, 5)) -> dict[str, Any]:
    """Top-k retrieval both ways among the given N pairs, over their distinct captions, with the extractor named.

    image -> text: each image ranks the distinct captions of the set (a caption shared by several rows is listed
    once and is right for each of them); text -> image: each distinct caption ranks the N images and is right when
    one of its first k carries it. Keys: image_to_text_top{k}, text_to_image_top{k}, pairs, distinct_captions,
    chance_top1 (1 / distinct captions, both ways), and clip_extractor's fields.
    """
    images_embedded, captions_embedded = _embed(model, images, captions)
    caption_bytes = caption_tensor(captions, model.config.caption_bytes)  # which rows are the same text
    return {**retrieval_scores(images_embedded, captions_embedded, caption_bytes, k), **clip_extractor(model)}


def swap_preference(model: CLIP, images: Tensor, captions: Sequence[str]) -> dict[str, Any]:
    """Whether the model binds words to places: of the images whose caption names two items at two places, the
    share that score their own caption above the same caption with the two places swapped (chance 0.5; a model
    that reads captions as bags of words sits near it), with the extractor named."""
    from ..data.captions import swap_places

    swapped = [swap_places(text) for text in captions]
    rows = [i for i, text in enumerate(swapped) if text is not None]
    if not rows:
        raise AigcError("none of the captions names two items at two places; give two-item captions")
    picked = images[torch.as_tensor(rows)]
    own = _embed(model, picked, [captions[i] for i in rows])
    other = _embed(model, picked, [swapped[i] for i in rows])[1]
    preferred = ((own[0] * own[1]).sum(1) > (own[0] * other).sum(1)).float().mean()
    return {"own_over_swapped": float(preferred), "pairs": len(rows), **clip_extractor(model)}


def _check_model(model: Any) -> None:
    if not isinstance(model, CLIP):
        raise AigcError(f"CLIP scores need a clip model (load_clip(run_dir)), got {type(model).__name__}")


def _embed(model: CLIP, images: Tensor, captions: Captions) -> tuple[Tensor, Tensor]:
    """Unit embeddings of N images and their N captions; AigcError when the counts differ."""
    _check_model(model)
    if len(images) != len(captions):
        raise AigcError(f"got {len(images)} images and {len(captions)} captions; give one caption per image")
    family = FAMILIES.get("clip")
    return family.embed_images(model, images), family.embed_captions(model, captions)
