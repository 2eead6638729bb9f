"""The training input pipeline: a torch DataLoader over a dataset, in BatchOrder's exact, resumable order."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Sampler

from ..errors import DataError
from .base import ImageDataset
from .batches import BatchOrder
from .text import TextDataset

__all__ = ["training_batches", "flip_mask", "OrderedBatchSampler"]

FLIP_STREAM = 0x5EED_F11B  # keeps the flip coins apart from every other random stream drawn from the seed


class OrderedBatchSampler(Sampler[list[int]]):
    """This process's share of global batches start, start + 1, ... forever, as BatchOrder gives them."""

    def __init__(self, order: BatchOrder, start: int = 0) -> None:
        self.order, self.start = order, start

    def __iter__(self) -> Iterator[list[int]]:
        index = self.start
        while True:
            yield self.order.indices(index).tolist()
            index += 1


def flip_mask(seed: int, index: int, global_batch: int) -> Tensor:
    """Which images of global batch `index` are flipped, (global_batch,) bool: a pure function of the seed, the
    batch index and the position in the global batch, so any split across processes flips the same images."""
    coins = np.random.default_rng([FLIP_STREAM, seed % 2**63, index]).random(global_batch)
    return torch.from_numpy(coins < 0.5)


def _as_is(batch: dict[str, Tensor]) -> dict[str, Tensor]:
    return batch  # __getitems__ already gives the whole batch as one dict of tensors


def training_batches(dataset: ImageDataset | TextDataset, *, batch_size: int, seed: int, rank: int = 0,
                     world_size: int = 1, start: int = 0, device: torch.device | str = "cpu", flip: bool = False,
                     num_workers: int = 0) -> Iterator[dict[str, Tensor]]:
    """This process's batches k = start, start + 1, ... forever, on `device`: {"images" (B, C, H, W) float32 in
    [-1, 1], "labels" (B,) if labelled} or {"tokens" (B, block_size + 1)}.

    Batch k is BatchStream's batch k (a pure function of seed and k, this rank's slice of the global batch), so a
    run resumed at k reads what it would have read. Each batch is one `__getitems__` call on the dataset, in
    `num_workers` persistent worker processes (0: in this process); pinned memory when `device` is CUDA.
    flip: images only; flip the images flip_mask(seed, k, ...) picks, left-right.
    """
    if flip and not isinstance(dataset, ImageDataset):
        raise DataError("data.flip flips images, and this dataset is text; set data.flip=false")
    order = BatchOrder(len(dataset), batch_size, seed=seed, rank=rank, world_size=world_size)
    device = torch.device(device)
    loader = DataLoader(dataset, batch_sampler=OrderedBatchSampler(order, start), collate_fn=_as_is,
                        num_workers=num_workers, pin_memory=device.type == "cuda",
                        persistent_workers=num_workers > 0, prefetch_factor=4 if num_workers > 0 else None)
    return _on_device(loader, device, start, order if flip else None, seed)


def _on_device(loader: DataLoader, device: torch.device, start: int, flip_order: BatchOrder | None,
               seed: int) -> Iterator[dict[str, Tensor]]:
    for index, batch in enumerate(loader, start):
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        if flip_order is not None:
            first = flip_order.rank * flip_order.batch_size
            mask = flip_mask(seed, index, flip_order.global_batch)[first:first + flip_order.batch_size]
            images = batch["images"]
            batch["images"] = torch.where(mask.to(device)[:, None, None, None], images.flip(-1), images)
        yield batch
