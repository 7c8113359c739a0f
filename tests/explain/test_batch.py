"""The batch and model: real test images by seed, or the article's random 3x32x32 batch."""

from __future__ import annotations

import pytest
import torch

from gradsight.data import load_dataset
from gradsight.errors import ConfigError
from gradsight.explain import ExplainConfig, load_batch


def test_real_images_drawn_by_seed() -> None:
    batch = load_batch(ExplainConfig(batch_size=5, seed=3))
    assert batch.images.shape == (5, 1, 28, 28) and batch.images.dtype == torch.float64
    data = load_dataset("fashion-mnist-mini")
    test = data.test
    order = torch.randperm(len(test), generator=torch.Generator().manual_seed(3))[:5]
    assert torch.equal(batch.images, test.images[order].double())  # type: ignore[attr-defined]
    assert batch.setting.labels == tuple(test.labels[order].tolist())  # type: ignore[attr-defined]
    names = data.info.class_names
    assert batch.setting.label_names == tuple(names[k] for k in batch.setting.labels)
    assert batch.setting.source == "5 test images of fashion-mnist-mini"
    assert (
        batch.model.fc.weight.shape == (10, 3136) and batch.model.fc.weight.dtype == torch.float64
    )
    other = load_batch(ExplainConfig(batch_size=5, seed=4))
    assert not torch.equal(batch.images, other.images)
    assert not torch.equal(batch.model.fc.weight, other.model.fc.weight)


def test_like_article_is_random_3x32x32() -> None:
    batch = load_batch(ExplainConfig(like_article=True))
    torch.manual_seed(42)
    assert torch.equal(batch.images, torch.randn(4, 3, 32, 32).double())
    assert batch.images.shape == (4, 3, 32, 32)
    assert all(0 <= k < 10 for k in batch.setting.labels) and batch.setting.label_names == ()
    assert [tuple(p.shape) for p in batch.model.parameters()] == [
        (16, 3, 3, 3), (16,), (10, 4096), (10,),
    ]  # fmt: skip


def test_batch_larger_than_test_split_raises() -> None:
    with pytest.raises(ConfigError) as exc:
        load_batch(ExplainConfig(batch_size=2001))
    assert str(exc.value) == (
        "--batch-size 2001 is larger than the 2000 images of fashion-mnist-mini's test split; "
        "use at most 2000"
    )
