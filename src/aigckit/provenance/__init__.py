"""Provenance of generated content: metadata written into PNG files (and, later, watermarks and credentials)."""

from __future__ import annotations

from .png import png_bytes, read_metadata, save_png

__all__ = ["png_bytes", "read_metadata", "save_png"]
