"""Pieces used identically by two or more families."""

from .labels import check_class_labels
from .noise import ExampleNoise, example_seeds, randn
from .text_encoder import CrossAttention, TextAdapter, TextEncoder

__all__ = ["check_class_labels", "randn", "ExampleNoise", "example_seeds", "TextEncoder", "TextAdapter",
           "CrossAttention"]
