"""Tests of the helpers this package added to base.py (stats, TensorSplit.from_uint8)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gradsight.data.base import TensorSplit, channel_stats_uint8


def test_channel_stats_are_exact_per_channel() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(50, 3, 7, 5), dtype=np.uint8)
    mean, std = channel_stats_uint8(images)
    scaled = images.astype(np.float64) / 255
    assert mean == pytest.approx(tuple(scaled[:, c].mean() for c in range(3)), abs=1e-12)
    assert std == pytest.approx(tuple(scaled[:, c].std() for c in range(3)), abs=1e-12)


def test_constant_channel_gets_std_one() -> None:
    images = np.full((4, 1, 2, 2), 51, dtype=np.uint8)
    assert channel_stats_uint8(images) == ((pytest.approx(0.2),), (1.0,))


def test_from_uint8_normalises_once_and_types_labels() -> None:
    images = np.array([[[[0, 255]]], [[[51, 102]]]], dtype=np.uint8)  # (2, 1, 1, 2)
    split = TensorSplit.from_uint8(images, np.array([1, 0], dtype=np.uint8), (0.2,), (0.4,))
    assert split.images.dtype == torch.float32 and split.labels.dtype == torch.int64
    expected = torch.tensor([[[[-0.5, 2.0]]], [[[0.0, 0.5]]]])
    assert torch.allclose(split.images, expected)
    assert split.labels.tolist() == [1, 0]


def test_tensor_split_shuffle_is_deterministic_with_a_seeded_generator() -> None:
    split = TensorSplit(torch.arange(10.0).view(10, 1, 1, 1), torch.arange(10))

    def order(seed: int) -> list[int]:
        g = torch.Generator().manual_seed(seed)
        return [int(v) for _, y in split.batches(3, shuffle=True, generator=g) for v in y]

    assert order(5) == order(5)
    assert order(5) != order(6)
    assert sorted(order(5)) == list(range(10))
