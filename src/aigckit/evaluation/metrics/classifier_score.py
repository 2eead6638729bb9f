"""Scores from a classifier's predictions on generated images."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["classifier_score", "conditional_accuracy"]


def classifier_score(logits: Tensor, splits: int = 10) -> tuple[float, float]:
    """exp(E_x KL(p(y|x) || p(y))), the Inception Score's formula with our evaluator, mean and std over splits.

    High when each image is confidently one class and the classes are used evenly; at most the class count. The
    rows are shuffled (a fixed seed) before the splits, as torchmetrics does, so that data ordered by class (a
    test split sorted by file name) does not put one class in each split and score 1.
    """
    probs = logits.double().softmax(dim=1)
    probs = probs[torch.randperm(len(probs), generator=torch.Generator().manual_seed(0))]
    scores = []
    for part in probs.chunk(splits):
        marginal = part.mean(0, keepdim=True)
        kl = (part * (part.clamp(min=1e-12).log() - marginal.clamp(min=1e-12).log())).sum(1)
        scores.append(kl.mean().exp())
    values = torch.stack(scores)
    return float(values.mean()), float(values.std()) if len(scores) > 1 else 0.0


def conditional_accuracy(logits: Tensor, requested: Tensor, num_classes: int) -> dict[str, float]:
    """Share of samples the evaluator assigns to the requested class: overall and per class."""
    correct = logits.argmax(1).cpu() == requested.cpu()
    out = {"overall": float(correct.double().mean())}
    for c in range(num_classes):
        chosen = requested.cpu() == c
        if chosen.any():
            out[str(c)] = float(correct[chosen].double().mean())
    return out
