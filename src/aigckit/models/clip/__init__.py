"""CLIP family: a contrastive image-caption model that scores what text-to-image models draw."""

from .config import CLIPConfig
from .family import CLIPFamily
from .networks import CLIP, contrastive_loss

__all__ = ["CLIP", "CLIPConfig", "CLIPFamily", "contrastive_loss"]
