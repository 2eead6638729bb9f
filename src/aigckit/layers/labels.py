"""Class labels for conditional models, checked once the same way for every family."""

from __future__ import annotations

from torch import Tensor

from ..errors import AigcError

__all__ = ["check_class_labels"]


def check_class_labels(labels: Tensor | None, *, conditional: bool, num_classes: int | None) -> None:
    """Refuse labels given to an unconditional model, and labels outside 0..num_classes-1, with AigcError."""
    if labels is None:
        return
    if not conditional:
        raise AigcError("this model is unconditional and takes no labels; drop them "
                        "(train with model.conditional=true for class labels)")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise AigcError(f"labels must be in 0..{num_classes - 1}, got {labels.flatten().tolist()[:8]}")
