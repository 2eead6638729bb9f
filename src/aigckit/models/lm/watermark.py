"""A statistical text watermark (Kirchenbauer et al. 2023, https://arxiv.org/abs/2301.10226).

At every step the previous `context_width` tokens and a secret key seed a pseudo-random "green list" of a
fraction gamma of the vocabulary, and generation adds delta to the green tokens' logits. Text written without
the key lands on green tokens a fraction gamma of the time; watermarked text far more often. The detector
recomputes the green lists and counts: z = (green - gamma T) / sqrt(T gamma (1 - gamma)) over T scored
tokens, one-sided p-value from the normal tail. It needs the key and the tokenizer, never the model.

By default each (context, token) pair is scored once (Kirchenbauer et al., "On the Reliability of
Watermarks", 2023): with a fixed key a frequent pair is always green or always red, so counting its
repeats would push the z-score of ordinary text away from zero, most of all for small vocabularies.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Watermark", "WatermarkScore"]


@functools.lru_cache(maxsize=65536)
def _green_ids(key: int, gamma: float, context: tuple[int, ...], vocab_size: int) -> Tensor:
    digest = hashlib.sha256(f"{key}:{','.join(map(str, context))}".encode()).digest()
    generator = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)
    return torch.randperm(vocab_size, generator=generator)[: max(1, round(gamma * vocab_size))]


@dataclass(frozen=True)
class WatermarkScore:
    """The detector's verdict on one text."""

    z: float
    p_value: float
    green: int
    scored: int
    green_fraction: float


@dataclass(frozen=True)
class Watermark:
    """Green-list logit bias during generation and its z-test: gamma (green fraction), delta (logit bias),
    key (the secret), context_width (how many previous tokens seed the green list)."""

    key: int = 15485863
    gamma: float = 0.25
    delta: float = 2.0
    context_width: int = 1

    def __post_init__(self) -> None:
        if not 0 < self.gamma < 1 or self.delta < 0 or self.context_width < 1:
            raise ValueError("watermark: gamma must be in (0, 1), delta >= 0 and context_width >= 1")

    def green_mask(self, context: Sequence[int], vocab_size: int) -> Tensor:
        """(vocab_size,) bool: the green list that follows `context` (its last context_width tokens count)."""
        mask = torch.zeros(vocab_size, dtype=torch.bool)
        context = tuple(int(t) for t in context[-self.context_width:])
        mask[_green_ids(self.key, self.gamma, context, vocab_size)] = True
        return mask

    def bias(self, logits: Tensor, seen: Tensor) -> Tensor:
        """logits (B, V) of the next token after the sequences `seen` (B, T), with delta added to green tokens."""
        vocab_size = logits.shape[-1]
        masks = torch.stack([self.green_mask(row.tolist(), vocab_size) for row in seen]).to(logits.device)
        return logits + self.delta * masks

    def score(self, ids: Sequence[int], vocab_size: int, *, ignore_repeated: bool = True) -> WatermarkScore:
        """z-score and p-value of the token ids `ids`; the first context_width tokens have no context to score,
        and with ignore_repeated each (context, token) pair counts once."""
        h = self.context_width
        pairs = [(tuple(ids[i - h:i]), ids[i]) for i in range(h, len(ids))]
        if ignore_repeated:
            pairs = list(dict.fromkeys(pairs))
        scored = len(pairs)
        if scored < 1:
            raise ValueError(f"need more than {h} tokens to test for the watermark")
        green = sum(bool(self.green_mask(context, vocab_size)[token]) for context, token in pairs)
        z = (green - self.gamma * scored) / math.sqrt(scored * self.gamma * (1 - self.gamma))
        p_value = 0.5 * math.erfc(z / math.sqrt(2))  # one-sided normal tail
        return WatermarkScore(z=z, p_value=p_value, green=green, scored=scored, green_fraction=green / scored)
