"""Seeded Gaussian noise that does not depend on where the model runs."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["randn"]


def randn(shape: Sequence[int], generator: torch.Generator | None, device: torch.device | str,
          dtype: torch.dtype = torch.float32) -> Tensor:
    """N(0, I) drawn on the generator's device (CPU without one), then moved to `device`: the same seed gives
    the same noise on CPU and GPU."""
    source = generator.device if generator is not None else "cpu"
    return torch.randn(tuple(shape), generator=generator, device=source, dtype=dtype).to(device)
