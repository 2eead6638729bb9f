"""Pieces used identically by two or more families."""

from .noise import randn

__all__ = ["randn"]
