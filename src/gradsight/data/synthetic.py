"""``synthetic``: a tiny generated dataset, the same for the same seed, for fast tests.

Each class has a fixed blocky pattern (a random 4x4 grid scaled up to the image size); a
sample is 60% its class pattern plus 40% uniform noise, so a small model learns it in a
few steps but not in zero.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gradsight.data.base import DatasetInfo, LoadedDataset, TensorSplit, channel_stats_uint8
from gradsight.errors import DataError

__all__ = [
    "SYNTHETIC_CLASSES",
    "SYNTHETIC_IMAGE_SIZE",
    "SYNTHETIC_TEST_SIZE",
    "SYNTHETIC_TRAIN_SIZE",
    "load_synthetic",
]

SYNTHETIC_IMAGE_SIZE = 16
SYNTHETIC_CLASSES = 10
SYNTHETIC_TRAIN_SIZE = 512
SYNTHETIC_TEST_SIZE = 128
_GRID = 4  # patterns are _GRID x _GRID blocks
_SIGNAL = 0.6


def load_synthetic(
    *,
    image_size: int | None = None,
    seed: int = 0,
    train_size: int = SYNTHETIC_TRAIN_SIZE,
    test_size: int = SYNTHETIC_TEST_SIZE,
) -> LoadedDataset:
    """Generate the synthetic dataset: 1 channel, 10 balanced classes, held in memory.

    Args:
        image_size: side of the square images, at least 4; default 16.
        seed: the same seed gives the same patterns, images and labels.
        train_size: number of train images; default 512.
        test_size: number of test images; default 128.

    Raises:
        DataError: ``image_size`` is below 4 or a split size is not positive.
    """
    size = SYNTHETIC_IMAGE_SIZE if image_size is None else image_size
    if size < _GRID:
        raise DataError(
            f"image size {size} is too small for the synthetic dataset; use {_GRID} or more "
            f"(default {SYNTHETIC_IMAGE_SIZE})."
        )
    if train_size < 1 or test_size < 1:
        raise DataError(f"synthetic split sizes must be positive, got {train_size}/{test_size}.")
    generator = torch.Generator().manual_seed(seed)
    patterns = _patterns(size, generator)
    train_x, train_y = _samples(patterns, train_size, generator)
    test_x, test_y = _samples(patterns, test_size, generator)
    mean, std = channel_stats_uint8(train_x.numpy())
    info = DatasetInfo(
        name="synthetic",
        channels=1,
        image_size=(size, size),
        num_classes=SYNTHETIC_CLASSES,
        class_names=tuple(f"pattern {k}" for k in range(SYNTHETIC_CLASSES)),
        mean=mean,
        std=std,
        train_size=train_size,
        test_size=test_size,
        source=f"generated (seed {seed})",
    )
    train = TensorSplit.from_uint8(train_x.numpy(), train_y.numpy(), mean, std)
    test = TensorSplit.from_uint8(test_x.numpy(), test_y.numpy(), mean, std)
    return LoadedDataset(info, train, test)


def _patterns(size: int, generator: torch.Generator) -> torch.Tensor:
    """Return one pattern per class, floats in [0, 1] of shape (K, 1, size, size)."""
    coarse = torch.rand(SYNTHETIC_CLASSES, 1, _GRID, _GRID, generator=generator)
    return F.interpolate(coarse, size=(size, size), mode="nearest")


def _samples(
    patterns: torch.Tensor, n: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``n`` noisy samples with balanced, shuffled labels: uint8 (n, 1, S, S), int64 (n,)."""
    labels = torch.arange(n) % SYNTHETIC_CLASSES
    labels = labels[torch.randperm(n, generator=generator)]
    noise = torch.rand((n, *patterns.shape[1:]), generator=generator)
    images = _SIGNAL * patterns[labels] + (1 - _SIGNAL) * noise  # (n, 1, S, S) in [0, 1]
    return (images * 255).round().to(torch.uint8), labels
