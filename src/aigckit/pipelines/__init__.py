"""Inference objects built from a run directory."""

from .image import ImagePipeline, load
from .text import TextPipeline
from .video import VideoPipeline

__all__ = ["ImagePipeline", "TextPipeline", "VideoPipeline", "load"]
