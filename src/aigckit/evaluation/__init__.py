"""Measuring runs: plots now; metrics as they are added."""

from .plots import plot_losses

__all__ = ["plot_losses"]
