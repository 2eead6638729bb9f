"""Inference objects built from a run directory."""

from .image import ImagePipeline, load
from .text import TextPipeline

__all__ = ["ImagePipeline", "TextPipeline", "load"]
