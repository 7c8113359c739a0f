"""Plain types every dataset returns: its metadata and its train/test splits."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "Batch",
    "DatasetInfo",
    "LoadedDataset",
    "Split",
    "TensorSplit",
    "channel_stats_uint8",
    "normalize_uint8",
]

Batch = tuple[Tensor, Tensor]  # images (B, C, H, W) float32 normalised, labels (B,) int64


@dataclass(frozen=True)
class DatasetInfo:
    """What a model and a report need to know about a dataset."""

    name: str
    channels: int
    image_size: tuple[int, int]  # (H, W)
    num_classes: int
    class_names: tuple[str, ...]
    mean: tuple[float, ...]  # per channel, in [0, 1] pixel units
    std: tuple[float, ...]
    train_size: int
    test_size: int
    source: str  # a path or URL the data came from
    licence: str | None = None
    skipped_images: int = 0  # unreadable files left out (folder: with skip_bad_images)


class Split(Protocol):
    """One split (train or test) that yields normalised batches."""

    def __len__(self) -> int: ...

    def num_batches(self, batch_size: int) -> int: ...

    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool,
        generator: torch.Generator | None = None,
        device: torch.device | None = None,
    ) -> Iterator[Batch]: ...


def normalize_uint8(images: Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    """Turn uint8 images (N, C, H, W) into float32 ``(x / 255 - mean) / std`` per channel."""
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (images.to(torch.float32) / 255.0 - m) / s


def channel_stats_uint8(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Compute the exact per-channel mean and std of uint8 images, in [0, 1] pixel units.

    A 256-bin histogram per channel keeps this exact and cheap even for 60,000 images.
    A channel that is constant gets std 1.0, so normalising never divides by zero.

    Args:
        images: uint8 array (N, C, H, W).

    Returns:
        ``(mean, std)``, each a tuple with one float per channel.
    """
    values = np.arange(256, dtype=np.float64) / 255.0
    means, stds = [], []
    for c in range(images.shape[1]):
        counts = np.bincount(images[:, c].ravel(), minlength=256).astype(np.float64)
        mean = float(counts @ values / counts.sum())
        std = float(np.sqrt(counts @ (values - mean) ** 2 / counts.sum()))
        means.append(mean)
        stds.append(std if std > 0 else 1.0)
    return tuple(means), tuple(stds)


class TensorSplit:
    """A split held in memory as two tensors; batches are index slices, no per-sample Python.

    Args:
        images: float32 normalised images (N, C, H, W).
        labels: int64 class indices (N,).
    """

    def __init__(self, images: Tensor, labels: Tensor) -> None:
        if images.shape[0] != labels.shape[0]:
            raise ValueError(f"{images.shape[0]} images but {labels.shape[0]} labels")
        self.images = images
        self.labels = labels

    @classmethod
    def from_uint8(
        cls,
        images: np.ndarray,
        labels: np.ndarray,
        mean: tuple[float, ...],
        std: tuple[float, ...],
    ) -> TensorSplit:
        """Normalise uint8 images (N, C, H, W) once and hold them with int64 labels (N,)."""
        x = normalize_uint8(torch.from_numpy(np.ascontiguousarray(images)), mean, std)
        y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
        return cls(x, y)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def num_batches(self, batch_size: int) -> int:
        return math.ceil(len(self) / batch_size)

    def to(self, device: torch.device) -> TensorSplit:
        """Return this split with both tensors moved to ``device`` once."""
        return TensorSplit(self.images.to(device), self.labels.to(device))

    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool,
        generator: torch.Generator | None = None,
        device: torch.device | None = None,
    ) -> Iterator[Batch]:
        n = len(self)
        if not shuffle:
            for start in range(0, n, batch_size):
                yield self.take(slice(start, start + batch_size), device)
            return
        order = torch.randperm(n, generator=generator).to(self.labels.device)
        for start in range(0, n, batch_size):
            yield self.take(order[start : start + batch_size], device)

    def take(self, idx: Tensor | slice, device: torch.device | None = None) -> Batch:
        """The images and labels at ``idx`` (indices or a slice), on ``device`` if given."""
        if isinstance(idx, Tensor):
            idx = idx.to(self.labels.device)
        x, y = self.images[idx], self.labels[idx]
        if device is not None and x.device != device:
            x = x.to(device, non_blocking=True)
            y = y.to(device, non_blocking=True)
        return x, y


@dataclass(frozen=True)
class LoadedDataset:
    """A dataset ready for training: metadata plus train and test splits."""

    info: DatasetInfo
    train: Split
    test: Split
