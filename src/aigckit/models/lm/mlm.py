"""Masked-language-model pretraining (BERT, https://arxiv.org/abs/1810.04805): hide some tokens, predict them
from both sides. The self-supervised step of our material: no labels, only the text itself."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["mask_tokens", "mlm_loss", "fill_masks"]


def mask_tokens(tokens: Tensor, vocab_size: int, mask_prob: float,
                generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Choose mask_prob of the positions to predict; of those, 80 % become [MASK] (id vocab_size), 10 % a random
    token and 10 % stay. Returns the corrupted tokens and the boolean (B, T) map of positions to predict."""
    draws = torch.rand(tokens.shape, generator=generator, device=tokens.device)
    chosen = draws < mask_prob
    kind = torch.rand(tokens.shape, generator=generator, device=tokens.device)
    random_tokens = torch.randint(vocab_size, tokens.shape, generator=generator, device=tokens.device)
    corrupted = torch.where(chosen & (kind < 0.8), vocab_size, tokens)
    corrupted = torch.where(chosen & (kind >= 0.8) & (kind < 0.9), random_tokens, corrupted)
    return corrupted, chosen


def mlm_loss(model: nn.Module, tokens: Tensor, config: Any) -> Tensor:
    """Cross-entropy on the chosen positions only (the others carry no training signal); `model` may be a
    wrapper (DDP), `config` is the encoder's."""
    corrupted, chosen = mask_tokens(tokens, config.vocab_size, config.mask_prob)
    logits, _ = model(corrupted)
    return F.cross_entropy(logits[chosen].float(), tokens[chosen])


@torch.no_grad()
def fill_masks(model: nn.Module, tokens: Tensor, mask: Tensor) -> Tensor:
    """tokens (B, T) with the positions in `mask` replaced by the encoder's most likely token."""
    inputs = tokens.masked_fill(mask, model.config.vocab_size)
    logits, _ = model(inputs)
    best = logits[..., : model.config.vocab_size].argmax(-1)  # never predict [MASK] itself
    return torch.where(mask, best, tokens)
