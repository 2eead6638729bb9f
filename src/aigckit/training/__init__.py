"""The training engine: one Trainer for every family."""

from .trainer import Trainer, train

__all__ = ["Trainer", "train"]
