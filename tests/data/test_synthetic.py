from __future__ import annotations

import pytest
import torch

from gradsight.data import TensorSplit, load_dataset
from gradsight.data.synthetic import load_synthetic
from gradsight.errors import DataError


def _splits(seed: int = 0, **kwargs: int) -> tuple[TensorSplit, TensorSplit]:
    ds = load_synthetic(seed=seed, **kwargs)
    assert isinstance(ds.train, TensorSplit) and isinstance(ds.test, TensorSplit)
    return ds.train, ds.test


def test_shapes_types_and_info() -> None:
    ds = load_dataset("synthetic")
    assert (ds.info.channels, ds.info.image_size, ds.info.num_classes) == (1, (16, 16), 10)
    assert (ds.info.train_size, ds.info.test_size) == (512, 128)
    train, test = _splits()
    assert train.images.shape == (512, 1, 16, 16) and train.images.dtype == torch.float32
    assert test.images.shape == (128, 1, 16, 16)
    assert train.labels.dtype == torch.int64


def test_classes_are_balanced() -> None:
    train, test = _splits()
    assert torch.bincount(train.labels).tolist() == [52, 52] + [51] * 8
    assert torch.bincount(test.labels).tolist() == [13] * 8 + [12] * 2


def test_normalised_with_train_statistics() -> None:
    train, _ = _splits()
    assert abs(float(train.images.mean())) < 1e-4
    assert float(train.images.std()) == pytest.approx(1.0, abs=1e-2)


def test_same_seed_same_data_other_seed_other_data() -> None:
    a, _ = _splits(seed=3)
    b, _ = _splits(seed=3)
    c, _ = _splits(seed=4)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)


def test_learnable_but_noisy() -> None:
    train, test = _splits()
    centroids = torch.stack([train.images[train.labels == k].mean(0) for k in range(10)])
    distances = torch.cdist(test.images.flatten(1), centroids.flatten(1))
    accuracy = float((distances.argmin(1) == test.labels).float().mean())
    assert accuracy > 0.9  # a nearest-centroid rule nearly solves it...
    same_class = train.images[train.labels == 0]
    assert float(same_class.std(0).mean()) > 0.2  # ...but samples of a class differ


def test_image_size_applies() -> None:
    ds = load_dataset("synthetic", image_size=8)
    assert ds.info.image_size == (8, 8)
    assert isinstance(ds.train, TensorSplit)
    assert ds.train.images.shape == (512, 1, 8, 8)


def test_too_small_image_size_is_refused() -> None:
    with pytest.raises(DataError, match=r"image size 3 is too small .* use 4 or more"):
        load_dataset("synthetic", image_size=3)


def test_custom_sizes_and_bad_sizes() -> None:
    train, test = _splits(train_size=30, test_size=10)
    assert (len(train), len(test)) == (30, 10)
    with pytest.raises(DataError, match="must be positive, got 0/10"):
        load_synthetic(train_size=0, test_size=10)
