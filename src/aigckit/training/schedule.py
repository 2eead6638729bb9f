"""Learning-rate multipliers as a pure function of the step (so resuming needs no scheduler state)."""

from __future__ import annotations

import math

__all__ = ["lr_factor"]


def lr_factor(step: int, *, warmup_steps: int, max_steps: int, schedule: str, floor: float = 0.0) -> float:
    """Multiplier of the base learning rate at `step`: linear warm-up, then constant/cosine/linear decay to
    `floor` (a fraction of the base rate; nanoGPT decays to a tenth)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    progress = (step - warmup_steps) / max(1, max_steps - warmup_steps)
    progress = min(max(progress, 0.0), 1.0)
    if schedule == "cosine":
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "linear":
        return floor + (1.0 - floor) * (1.0 - progress)
    raise ValueError(f"unknown lr schedule {schedule!r}")
