"""Seeded Gaussian noise that does not depend on where the model runs, nor on what else is in the batch."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["randn", "BatchGenerators", "ExampleNoise", "example_seeds"]


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


def example_seeds(seed: int, step: int, first: int, count: int) -> Tensor:
    """The seeds of the examples at places first .. first + count - 1 of training step `step` (places among all
    the step's examples, every process and micro-batch together) in a run seeded `seed`: (count,) int64 in
    [0, 2**32) (what a CPU generator keeps of a seed), a pure function of the four numbers."""
    step_seed = int.from_bytes(hashlib.sha256(f"{seed}/{step}".encode()).digest()[:8], "little")
    return torch.randint(0, 2**32, (first + count,), generator=torch.Generator().manual_seed(step_seed))[first:]


class ExampleNoise:
    """A training batch's random draws, each example's from a generator seeded by that example's seed.

    An example then gets the same noise whichever process and micro-batch it lands in: two processes at batch B
    draw exactly what one process at batch 2B draws, and a resumed run draws what the unbroken one did. Draws
    are made on the CPU, one example at a time, in the order they are asked for.
    """

    def __init__(self, seeds: Tensor, device: torch.device | str) -> None:
        self.generators = [torch.Generator().manual_seed(seed) for seed in seeds.tolist()]
        self.device = device

    def randn(self, *shape: int) -> Tensor:
        """(B, *shape) standard normal."""
        return torch.stack([torch.randn(shape, generator=g) for g in self.generators]).to(self.device)

    def rand(self, *shape: int) -> Tensor:
        """(B, *shape) uniform on [0, 1)."""
        return torch.stack([torch.rand(shape, generator=g) for g in self.generators]).to(self.device)

    def randint(self, high: int, *shape: int) -> Tensor:
        """(B, *shape) integers uniform on 0 .. high - 1."""
        return torch.stack([torch.randint(high, shape, generator=g) for g in self.generators]).to(self.device)
