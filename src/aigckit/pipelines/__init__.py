"""Inference objects built from a run directory."""

from .image import ImagePipeline, load

__all__ = ["ImagePipeline", "load"]
