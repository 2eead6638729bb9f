"""Scores of image/caption embeddings: CLIP-score of pairs and retrieval accuracy among a set, as plain functions of
unit vectors and caption bytes.

Captions are compared as text: rows with the same caption are one caption, so a set where two images share a
caption ("a small 7 in the centre") counts either one as right, and never lists that caption twice.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["clip_score_of", "caption_groups", "retrieval_scores"]


def clip_score_of(image_embeddings: Tensor, text_embeddings: Tensor) -> float:
    """100 * mean over pairs of max(cos, 0) of row i of each (N, D) unit-vector set: CLIP-score (Hessel et al.
    2021, https://arxiv.org/abs/2104.08718) with the scale 100 of torchmetrics and text-to-image papers, not w=2.5."""
    cosines = (image_embeddings.float() * text_embeddings.float()).sum(-1)  # (N,)
    return float(100 * cosines.clamp(min=0).mean())


def caption_groups(captions: Tensor) -> tuple[Tensor, Tensor]:
    """Caption bytes (N, L) -> which distinct caption each row is (N,) int64, and the first row of each (U,)."""
    unique, group = torch.unique(captions.cpu(), dim=0, return_inverse=True)
    first = torch.full((len(unique),), len(captions), dtype=torch.int64)
    first = first.scatter_reduce(0, group, torch.arange(len(captions)), reduce="amin")
    return group, first


def retrieval_scores(image_embeddings: Tensor, text_embeddings: Tensor, captions: Tensor,
                     k: Sequence[int] = (1, 5)) -> dict[str, float]:
    """Top-k retrieval among a set of N pairs, both ways, over the U distinct captions.

    image -> text: each image ranks the U distinct captions; right when its own is among the first k.
    text -> image: each distinct caption ranks the N images; right when one of the first k carries that caption.
    Chance at top-1 is 1/U both ways ("chance_top1"). Embeddings: (N, D) unit vectors, row i of each a pair;
    captions: (N, L) bytes, which say which rows share a caption.
    """
    group, first = caption_groups(captions)
    images, texts = image_embeddings.float().cpu(), text_embeddings.float().cpu()[first]  # (N, D), (U, D)
    similarity = images @ texts.T  # (N, U)
    n, u = similarity.shape
    scores = {"pairs": n, "distinct_captions": u, "chance_top1": 1 / u}
    for top in k:
        best_captions = similarity.topk(min(top, u), dim=1).indices  # (N, k)
        scores[f"image_to_text_top{top}"] = float((best_captions == group[:, None]).any(1).float().mean())
        best_images = similarity.T.topk(min(top, n), dim=1).indices  # (U, k)
        scores[f"text_to_image_top{top}"] = float((group[best_images] == torch.arange(u)[:, None]).any(1)
                                                  .float().mean())
    return scores
