"""Seeded Gaussian noise that does not depend on where the model runs, nor on what else is in the batch."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["randn", "BatchGenerators"]


class BatchGenerators:
    """One generator per group of batch rows: a server batches several requests into one sampler call, and each
    request's rows still draw their noise from the request's own seed, as if it ran alone."""

    def __init__(self, groups: Sequence[tuple[torch.Generator, int]]) -> None:
        self.groups = list(groups)  # (generator, number of rows), in batch order
        if any(rows < 1 for _, rows in self.groups):
            raise ValueError("every group of BatchGenerators needs at least one row")

    @property
    def rows(self) -> int:
        """Rows in the whole batch."""
        return sum(rows for _, rows in self.groups)


def randn(shape: Sequence[int], generator: torch.Generator | BatchGenerators | None, device: torch.device | str,
          dtype: torch.dtype = torch.float32) -> Tensor:
    """N(0, I) drawn on the generator's device (CPU without one), then moved to `device`: the same seed gives
    the same noise on CPU and GPU. With BatchGenerators, each group of rows of dim 0 comes from its own generator."""
    if isinstance(generator, BatchGenerators):
        if shape[0] != generator.rows:
            raise ValueError(f"BatchGenerators cover {generator.rows} rows, the noise asked for {shape[0]}")
        return torch.cat([randn((rows, *shape[1:]), g, device, dtype) for g, rows in generator.groups])
    source = generator.device if generator is not None else "cpu"
    return torch.randn(tuple(shape), generator=generator, device=source, dtype=dtype).to(device)
