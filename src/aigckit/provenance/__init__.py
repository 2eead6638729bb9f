"""Provenance of generated content: metadata written into PNG files and an invisible image watermark."""

from __future__ import annotations

from .image_watermark import WatermarkDetection, capacity, detect, detection_threshold, embed
from .png import png_bytes, read_metadata, save_png

__all__ = ["WatermarkDetection", "capacity", "detect", "detection_threshold", "embed", "png_bytes", "read_metadata",
           "save_png"]
