"""A split that streams samples from a torch ``Dataset`` instead of holding them in memory."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from gradsight.data.base import Batch

__all__ = ["StreamSplit"]


class StreamSplit:
    """A :class:`~gradsight.data.base.Split` over a torch ``Dataset``, batched by a ``DataLoader``.

    The dataset must yield ``(image, label)`` with ``image`` a normalised float32 tensor
    (C, H, W) and ``label`` an int; batches come out as (B, C, H, W) float32 and (B,) int64.

    Args:
        dataset: a map-style dataset with ``__len__``.
        num_workers: worker processes for the ``DataLoader``; 0 loads in this process.
    """

    def __init__(self, dataset: Dataset[Any], *, num_workers: int = 0) -> None:
        self.dataset = dataset
        self.num_workers = num_workers

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def num_batches(self, batch_size: int) -> int:
        return math.ceil(len(self) / batch_size)

    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool,
        generator: torch.Generator | None = None,
        device: torch.device | None = None,
    ) -> Iterator[Batch]:
        """Yield batches in order, or shuffled by ``generator`` (same seed, same order)."""
        loader = DataLoader(
            self.dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            generator=generator,
            num_workers=self.num_workers,
            pin_memory=device is not None and device.type == "cuda",
        )
        yield from _moved(loader, device)

    def batches_of(
        self, steps: list[list[int]], device: torch.device | None = None
    ) -> Iterator[Batch]:
        """Yield one batch per list of sample indices in ``steps``, in that order (a rank's
        share of each global batch in distributed training)."""
        loader = DataLoader(
            self.dataset,
            batch_sampler=steps,
            num_workers=self.num_workers,
            pin_memory=device is not None and device.type == "cuda",
        )
        yield from _moved(loader, device)


def _moved(loader: DataLoader[Any], device: torch.device | None) -> Iterator[Batch]:
    for x, y in loader:
        if device is not None and x.device != device:
            x = x.to(device, non_blocking=True)
            y = y.to(device, non_blocking=True)
        yield x, y
