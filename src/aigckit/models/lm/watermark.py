"""A statistical text watermark (Kirchenbauer et al. 2023, https://arxiv.org/abs/2301.10226).

At every step the previous `context_width` tokens and a secret key seed a pseudo-random "green list" of a
fraction gamma of the vocabulary, and generation adds delta to the green tokens' logits. Text written without
the key lands on green tokens a fraction gamma of the time; watermarked text far more often. The detector
recomputes the green lists and counts: z = (green - gamma T) / sqrt(T gamma (1 - gamma)) over T scored
tokens, one-sided p-value from the normal tail. It needs the key material and the tokenizer, never the model.

The key material is stored whole (`Watermark.save`, a JSON key file): besides the secret, the vocabulary size V
the green lists are drawn over (the model's logits, which may be padded beyond the tokenizer), and so the
list size round(gamma V) and the effective gamma = size / V that the z-test must use; a detector with another V
would draw other lists and find nothing.

By default each (context, token) pair is scored once (Kirchenbauer et al., "On the Reliability of
Watermarks", 2023): with a fixed key a frequent pair is always green or always red, so counting its
repeats would push the z-score of ordinary text away from zero, most of all for small vocabularies.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ...atomic import atomic_write_text
from ...errors import AigcError

__all__ = ["Watermark", "WatermarkScore", "green_list_size"]

SCHEME = "kirchenbauer-2023"  # the key file's "scheme": green lists seeded by sha256(key, context)
FORMAT_VERSION = 1


def green_list_size(gamma: float, vocab_size: int) -> int:
    """Green tokens per list: gamma V rounded, at least 1."""
    return max(1, round(gamma * vocab_size))


@functools.lru_cache(maxsize=65536)
def _green_ids(key: int, size: int, context: tuple[int, ...], vocab_size: int) -> Tensor:
    digest = hashlib.sha256(f"{key}:{','.join(map(str, context))}".encode()).digest()
    generator = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)
    return torch.randperm(vocab_size, generator=generator)[:size]


@dataclass(frozen=True)
class WatermarkScore:
    """The detector's verdict on one text."""

    z: float
    p_value: float
    green: int
    scored: int
    green_fraction: float
    expected_fraction: float  # the effective gamma: green-list size / vocabulary size


@dataclass(frozen=True)
class Watermark:
    """The whole key material: key (the secret), vocab_size (V, the ids the green lists are drawn over: the
    model's logits), gamma (the green fraction asked for; the lists hold green_list_size = round(gamma V) ids,
    so the z-test uses effective_gamma = green_list_size / V), delta (logit bias), context_width (previous
    tokens seeding a list) and tokenizer_sha256 (the tokenizer the ids come from, when known).

    `save` / `load` write and read it as a JSON key file; `score` refuses ids outside the vocabulary."""

    key: int
    vocab_size: int
    gamma: float = 0.25
    delta: float = 2.0
    context_width: int = 1
    tokenizer_sha256: str | None = None

    def __post_init__(self) -> None:
        problems = [
            (isinstance(self.key, bool) or not isinstance(self.key, int) or self.key < 0,
             f"watermark key must be a non-negative integer, got {self.key!r}"),
            (not isinstance(self.vocab_size, int) or self.vocab_size < 2,
             f"watermark vocab_size must be an integer of at least 2, got {self.vocab_size!r}"),
            (not 0 < self.gamma < 1, f"watermark gamma (green-list fraction) must be in (0, 1), got {self.gamma}"),
            (not (math.isfinite(self.delta) and self.delta >= 0),
             f"watermark delta (logit bias) must be a number >= 0, got {self.delta}"),
            (isinstance(self.context_width, bool) or not isinstance(self.context_width, int)
             or self.context_width < 1, f"watermark context width must be an integer >= 1, got {self.context_width!r}"),
        ]
        for failed, message in problems:
            if failed:
                raise AigcError(message)
        if self.green_list_size >= self.vocab_size:
            raise AigcError(f"watermark gamma {self.gamma} puts all {self.vocab_size} tokens on the green list; "
                            f"lower it below {(self.vocab_size - 0.5) / self.vocab_size:.3f}")

    @property
    def green_list_size(self) -> int:
        """Ids on each green list: round(gamma V), at least 1."""
        return green_list_size(self.gamma, self.vocab_size)

    @property
    def effective_gamma(self) -> float:
        """The green fraction the lists really have: green_list_size / vocab_size."""
        return self.green_list_size / self.vocab_size

    # ---------------------------------------------------------------- the scheme
    def green_mask(self, context: Sequence[int]) -> Tensor:
        """(vocab_size,) bool: the green list that follows `context` (its last context_width tokens count)."""
        mask = torch.zeros(self.vocab_size, dtype=torch.bool)
        context = tuple(int(t) for t in context[-self.context_width:])
        mask[_green_ids(self.key, self.green_list_size, context, self.vocab_size)] = True
        return mask

    def bias(self, logits: Tensor, seen: Tensor) -> Tensor:
        """logits (B, V) of the next token after the sequences `seen` (B, T), with delta added to green tokens."""
        if logits.shape[-1] != self.vocab_size:
            raise AigcError(f"the watermark key was made for a vocabulary of {self.vocab_size} tokens but the model "
                            f"has {logits.shape[-1]}; make a key for this model (aigckit watermark key --run RUN)")
        masks = torch.stack([self.green_mask(row.tolist()) for row in seen]).to(logits.device)
        return logits + self.delta * masks

    def score(self, ids: Sequence[int], *, ignore_repeated: bool = True) -> WatermarkScore:
        """z-score and p-value of the token ids `ids` against the effective gamma; the first context_width tokens
        have no context to score, and with ignore_repeated each (context, token) pair counts once."""
        outside = [i for i in ids if not 0 <= i < self.vocab_size]
        if outside:
            raise AigcError(f"the text holds token ids outside the key's vocabulary of {self.vocab_size} (e.g. "
                            f"{outside[0]}); it was tokenized with another tokenizer than the key was made for")
        h = self.context_width
        pairs = [(tuple(ids[i - h:i]), ids[i]) for i in range(h, len(ids))]
        if ignore_repeated:
            pairs = list(dict.fromkeys(pairs))
        scored = len(pairs)
        if scored < 1:
            raise AigcError(f"the text has {len(ids)} tokens; the watermark test needs more than {h} "
                            f"(the first {h} only seed the green list)")
        gamma = self.effective_gamma
        green = sum(bool(self.green_mask(context)[token]) for context, token in pairs)
        z = (green - gamma * scored) / math.sqrt(scored * gamma * (1 - gamma))
        p_value = 0.5 * math.erfc(z / math.sqrt(2))  # one-sided normal tail
        return WatermarkScore(z=z, p_value=p_value, green=green, scored=scored, green_fraction=green / scored,
                              expected_fraction=gamma)

    # ---------------------------------------------------------------- the key file
    def to_dict(self) -> dict[str, Any]:
        """The key material as JSON-able fields, derived ones (green_list_size, effective_gamma) included."""
        return {"scheme": SCHEME, "format_version": FORMAT_VERSION, **asdict(self),
                "green_list_size": self.green_list_size, "effective_gamma": self.effective_gamma}

    @classmethod
    def from_dict(cls, fields: dict[str, Any], source: str = "the key") -> Watermark:
        """The inverse of to_dict; refuses material of another scheme or whose derived fields disagree."""
        if not isinstance(fields, dict) or fields.get("scheme") != SCHEME:
            raise AigcError(f"{source} is not an aigckit text-watermark key (scheme {SCHEME!r}); write one with "
                            f"aigckit watermark key --run RUN --out KEY.json")
        if fields.get("format_version", 0) > FORMAT_VERSION:
            raise AigcError(f"{source} was written by a newer aigckit (key format {fields['format_version']}); "
                            f"upgrade aigckit to read it")
        names = ("key", "vocab_size", "gamma", "delta", "context_width", "tokenizer_sha256")
        missing = [n for n in names if n not in fields]
        if missing:
            raise AigcError(f"{source} lacks {', '.join(missing)}; write it again with aigckit watermark key")
        mark = cls(**{n: fields[n] for n in names})
        if (fields.get("green_list_size"), fields.get("effective_gamma")) != (mark.green_list_size,
                                                                               mark.effective_gamma):
            raise AigcError(f"{source}: green_list_size {fields.get('green_list_size')} and effective_gamma "
                            f"{fields.get('effective_gamma')} do not follow from gamma {mark.gamma} over "
                            f"{mark.vocab_size} tokens; the key file was edited, write it again")
        return mark

    def save(self, path: str | Path) -> None:
        """Write the key material as JSON (atomically)."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Watermark:
        """Read a key file written by `save`; a missing, unreadable or foreign file raises AigcError."""
        path = Path(path)
        if not path.is_file():
            raise AigcError(f"no watermark key file at {path}; write one with aigckit watermark key --run RUN "
                            f"--out {path}")
        try:
            fields = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise AigcError(f"{path} is not a watermark key file (not JSON)") from None
        return cls.from_dict(fields, str(path))
