"""Style family: Johnson et al.'s fast stylizer and AdaIN, trained on content images."""

from .config import StyleConfig
from .family import StyleFamily, StyleNetwork

__all__ = ["StyleConfig", "StyleFamily", "StyleNetwork"]
