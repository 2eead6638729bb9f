"""Measuring runs: plots and metrics."""

from .plots import plot_latent_scatter, plot_losses, plot_manifold, plot_trajectory

__all__ = ["plot_latent_scatter", "plot_losses", "plot_manifold", "plot_trajectory"]
