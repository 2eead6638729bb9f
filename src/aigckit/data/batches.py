"""Endless shuffled batches whose order depends only on (seed, batch index): resumable at any step."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ..errors import DataError

if TYPE_CHECKING:
    from .base import ImageDataset
    from .text import TextDataset

__all__ = ["BatchOrder", "BatchStream"]


class BatchOrder:
    """Which examples make this process's share of global batch k: a pure function of (seed, k).

    Each epoch is one permutation of the data, seeded by seed * 100_003 + epoch; every global batch of
    batch_size * world_size examples is cut into one slice per rank, as a DistributedSampler does. With
    `micro_batches` M, global batches M s .. M s + M - 1 make step s, and an epoch holds whole steps only, so a
    step reads the examples one process at M x world_size x batch_size reads.
    """

    def __init__(self, n: int, batch_size: int, *, seed: int, rank: int = 0, world_size: int = 1,
                 micro_batches: int = 1) -> None:
        self.n, self.batch_size, self.seed, self.rank = n, batch_size, seed, rank
        self.global_batch, self.micro_batches = batch_size * world_size, micro_batches
        if n < self.global_batch * micro_batches:
            raise DataError(f"the dataset has {n} examples, fewer than one step of {self.global_batch * micro_batches}; "
                            f"lower train.batch_size or train.grad_accum_steps")
        # the incomplete last step is dropped
        self.batches_per_epoch = n // (self.global_batch * micro_batches) * micro_batches
        self._epoch, self._order = -1, torch.empty(0, dtype=torch.int64)

    def indices(self, index: int) -> Tensor:
        """This process's examples in global batch `index`, (batch_size,) int64."""
        epoch, position = divmod(index, self.batches_per_epoch)
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            self._epoch, self._order = epoch, torch.randperm(self.n, generator=generator)
        start = position * self.global_batch + self.rank * self.batch_size
        return self._order[start:start + self.batch_size]


class BatchStream:
    """Batch k is a pure function of (seed, k), so a resumed run reads exactly the batches it would have.

    Random access in the calling process; training reads the same batches through `training_batches`.
    """

    def __init__(self, dataset: ImageDataset | TextDataset, batch_size: int, *, seed: int, rank: int = 0,
                 world_size: int = 1, device: torch.device | str = "cpu") -> None:
        self.dataset, self.device = dataset, device
        self.order = BatchOrder(len(dataset), batch_size, seed=seed, rank=rank, world_size=world_size)
        self.batches_per_epoch = self.order.batches_per_epoch

    def batch_at(self, index: int) -> dict[str, Tensor]:
        """This process's share of global batch `index`."""
        batch = self.dataset.batch(self.order.indices(index))
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
