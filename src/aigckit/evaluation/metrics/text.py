"""Diversity and repetition of generated text, on token sequences."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

__all__ = ["distinct_n", "repetition_rate", "bleu", "self_bleu"]


def _ngrams(tokens: Sequence[int], n: int) -> list[tuple]:
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(samples: Sequence[Sequence[int]], n: int) -> float:
    """Distinct n-grams over all n-grams of all samples, https://arxiv.org/abs/1510.03055."""
    grams = [g for s in samples for g in _ngrams(s, n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def repetition_rate(samples: Sequence[Sequence[int]], n: int = 4) -> float:
    """Share of n-grams that already appeared earlier in the same sample."""
    repeated = total = 0
    for s in samples:
        seen: set[tuple] = set()
        for g in _ngrams(s, n):
            repeated += g in seen
            seen.add(g)
            total += 1
    return repeated / total if total else 0.0


def bleu(candidate: Sequence[int], references: Sequence[Sequence[int]], max_n: int = 4) -> float:
    """BLEU-4 with add-one smoothing of the higher orders (Lin & Och 2004) and the brevity penalty."""
    if not candidate:
        return 0.0
    log_precision = 0.0
    for n in range(1, max_n + 1):
        counts = Counter(_ngrams(candidate, n))
        best: Counter = Counter()
        for ref in references:
            best |= Counter(_ngrams(ref, n))
        matched = sum(min(c, best[g]) for g, c in counts.items())
        total = max(1, sum(counts.values()))
        smooth = 0 if n == 1 else 1
        log_precision += math.log(max(matched + smooth, 1e-9) / (total + smooth)) / max_n
    closest = min((len(r) for r in references), key=lambda r: (abs(r - len(candidate)), r))
    brevity = 1.0 if len(candidate) > closest else math.exp(1 - closest / len(candidate))
    return brevity * math.exp(log_precision)


def self_bleu(samples: Sequence[Sequence[int]]) -> float:
    """Mean BLEU of each sample against all the others: high means the samples resemble each other,
    https://arxiv.org/abs/1802.01886."""
    if len(samples) < 2:
        return 0.0
    return sum(bleu(s, [o for j, o in enumerate(samples) if j != i]) for i, s in enumerate(samples)) / len(samples)
