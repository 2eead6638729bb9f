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
from .video import VideoDataset

__all__ = ["training_batches", "flip_mask", "OrderedBatchSampler"]

FLIP_STREAM = 0x5EED_F11B  # keeps the flip coins apart from every other random stream drawn from the seed

# What the sampler hands the fetch for one batch: this process's example indices and which of them to flip.
Request = tuple[np.ndarray, "np.ndarray | None"]


def flip_mask(seed: int, index: int, global_batch: int) -> np.ndarray:
    """Which images of global batch `index` are flipped, (global_batch,) bool: a pure function of the seed, the
    batch index and the position in the global batch, so any split across processes flips the same images."""
    return np.random.default_rng([FLIP_STREAM, seed % 2**63, index]).random(global_batch) < 0.5


class OrderedBatchSampler(Sampler[Request]):
    """This process's share of global batches start, start + 1, ... forever, as BatchOrder gives them, each with
    its flip mask (None when not flipping)."""

    def __init__(self, order: BatchOrder, *, start: int = 0, flip: bool = False) -> None:
        self.order, self.start, self.flip = order, start, flip

    def __iter__(self) -> Iterator[Request]:
        order, index = self.order, self.start
        step_batch = order.global_batch * order.micro_batches
        while True:
            flip = None
            if self.flip:  # drawn for the whole step, so any split into processes and micro-batches flips alike
                step, micro_batch = divmod(index, order.micro_batches)
                first = micro_batch * order.global_batch + order.rank * order.batch_size
                flip = flip_mask(order.seed, step, step_batch)[first:first + order.batch_size]
            yield order.indices(index).numpy(), flip
            index += 1


class _Fetch:
    """What the DataLoader indexes: one `__getitems__` call per batch, one read of the dataset's storage."""

    def __init__(self, dataset: ImageDataset | TextDataset) -> None:
        self.dataset = dataset

    def __getitems__(self, request: Request) -> dict[str, Tensor]:
        indices, flip = request
        if flip is None:
            return self.dataset.batch(torch.from_numpy(indices))
        return self.dataset.batch(torch.from_numpy(indices), flip=flip)


def _as_is(batch: dict[str, Tensor]) -> dict[str, Tensor]:
    return batch  # __getitems__ already gives the whole batch as one dict of tensors


def training_batches(dataset: ImageDataset | TextDataset | VideoDataset, *, batch_size: int, seed: int, rank: int = 0,
                     world_size: int = 1, micro_batches: int = 1, start: int = 0, device: torch.device | str = "cpu",
                     flip: bool = False, num_workers: int = 0) -> Iterator[dict[str, Tensor]]:
    """This process's batches k = start, start + 1, ... forever, on `device`: {"images" (B, C, H, W) float32 in
    [-1, 1], "labels" (B,) if labelled}, {"tokens" (B, block_size + 1)} or {"videos" (B, T, C, H, W), "labels"
    (B, K) if labelled}.

    Batch k is a pure function of seed and k (this rank's slice of the global batch; BatchStream's batch k when
    micro_batches is 1), so a run resumed at k reads what it would have read. With `micro_batches` M (gradient
    accumulation), batches M s .. M s + M - 1 hold the examples of step s, those of one batch M times larger.
    Each batch is one fetch from the dataset, in `num_workers` persistent worker processes (0: in this process);
    pinned memory when `device` is CUDA.
    flip: images and videos; flip left-right the examples flip_mask(seed, s, examples per step) picks for step s.
    """
    if flip and not isinstance(dataset, (ImageDataset, VideoDataset)):
        raise DataError("data.flip flips images and videos, and this dataset is text; set data.flip=false")
    order = BatchOrder(len(dataset), batch_size, seed=seed, rank=rank, world_size=world_size,
                       micro_batches=micro_batches)
    device = torch.device(device)
    loader = DataLoader(_Fetch(dataset), batch_sampler=OrderedBatchSampler(order, start=start, flip=flip),
                        collate_fn=_as_is, num_workers=num_workers, pin_memory=device.type == "cuda",
                        persistent_workers=num_workers > 0, prefetch_factor=4 if num_workers > 0 else None,
                        # its own generator: starting an iterator draws a seed, which must not move the global
                        # random stream (a resumed run starts one at another step than the unbroken run)
                        generator=torch.Generator().manual_seed(seed))
    return ({k: v.to(device, non_blocking=True) for k, v in batch.items()} for batch in loader)
