"""Endless shuffled batches whose order depends only on (seed, batch index): resumable at any step."""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import DataError
from .base import ImageDataset

__all__ = ["BatchStream"]


class BatchStream:
    """Batch k is a pure function of (seed, k), so a resumed run reads exactly the batches it would have.

    Each epoch is one permutation of the data (seeded by seed and epoch); with several processes,
    every global batch is cut into one slice per rank, as a DistributedSampler does.
    """

    def __init__(self, dataset: ImageDataset, batch_size: int, *, seed: int, rank: int = 0,
                 world_size: int = 1, device: torch.device | str = "cpu") -> None:
        self.dataset, self.batch_size, self.seed = dataset, batch_size, seed
        self.rank, self.world_size, self.device = rank, world_size, device
        self.global_batch = batch_size * world_size
        if len(dataset) < self.global_batch:
            raise DataError(f"the dataset has {len(dataset)} examples, fewer than one batch of {self.global_batch}; "
                            f"lower train.batch_size")
        self.batches_per_epoch = len(dataset) // self.global_batch  # the incomplete last batch is dropped
        self._epoch, self._order = -1, torch.empty(0, dtype=torch.int64)

    def batch_at(self, index: int) -> dict[str, Tensor]:
        """This process's share of global batch `index`."""
        epoch, position = divmod(index, self.batches_per_epoch)
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            self._epoch, self._order = epoch, torch.randperm(len(self.dataset), generator=generator)
        start = position * self.global_batch + self.rank * self.batch_size
        batch = self.dataset.batch(self._order[start:start + self.batch_size])
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
