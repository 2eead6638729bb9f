"""Language-model family: a GPT and an LSTM over token ids."""

from .config import LMConfig
from .family import LMFamily

__all__ = ["LMConfig", "LMFamily"]
