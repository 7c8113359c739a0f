"""The batch and the freshly initialised SimpleCNN that the walk-through runs on."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from gradsight.data import DEFAULT_DATASET, load_dataset
from gradsight.errors import ConfigError
from gradsight.explain.config import ExplainConfig
from gradsight.models import SimpleCNN
from gradsight.rng import seed_everything

__all__ = ["ARTICLE_CLASSES", "ARTICLE_IMAGE", "ExplainBatch", "Setting", "load_batch"]

#: The article's random input: 3x32x32 images, 10 classes.
ARTICLE_IMAGE = (3, 32, 32)
ARTICLE_CLASSES = 10


@dataclass(frozen=True)
class Setting:
    """Where the batch came from, for the report's header."""

    source: str  # e.g. "4 test images of fashion-mnist-mini"
    seed: int
    image_shape: tuple[int, int, int]  # (C, H, W)
    num_classes: int
    labels: tuple[int, ...]
    label_names: tuple[str, ...]  # the labels' class names; empty for random labels
    dtype: str  # the dtype every comparison is made in


@dataclass(frozen=True, eq=False)
class ExplainBatch:
    """A SimpleCNN in float64 and one float64 batch for it."""

    setting: Setting
    model: SimpleCNN
    images: Tensor  # (N, C, H, W) float64
    labels: Tensor  # (N,) int64


def _dataset_batch(config: ExplainConfig) -> tuple[Tensor, Tensor, str, tuple[str, ...]]:
    data = load_dataset(DEFAULT_DATASET, seed=config.seed)
    available = len(data.test)
    if config.batch_size > available:
        raise ConfigError(
            f"--batch-size {config.batch_size} is larger than the {available} images of "
            f"{DEFAULT_DATASET}'s test split; use at most {available}"
        )
    order = torch.Generator().manual_seed(config.seed)
    images, labels = next(iter(data.test.batches(config.batch_size, shuffle=True, generator=order)))
    source = f"{config.batch_size} test images of {DEFAULT_DATASET}"
    return images, labels, source, data.info.class_names


def load_batch(config: ExplainConfig) -> ExplainBatch:
    """Build the seeded SimpleCNN and its batch, both in float64.

    Without ``like_article``: ``batch_size`` images drawn (by ``seed``) from the bundled
    Fashion-MNIST test split. With it: the article's ``torch.randn(N, 3, 32, 32)`` batch and
    random labels.

    Raises:
        ConfigError: a batch larger than the test split.
    """
    if config.like_article:
        seed_everything(config.seed)
        images = torch.randn(config.batch_size, *ARTICLE_IMAGE)  # (N, 3, 32, 32)
        labels = torch.randint(0, ARTICLE_CLASSES, (config.batch_size,))
        source = f"a random {config.batch_size}x3x32x32 batch with random labels (the article's)"
        names: tuple[str, ...] = ()
        num_classes = ARTICLE_CLASSES
    else:
        images, labels, source, names = _dataset_batch(config)
        num_classes = len(names)
    c, h, w = images.shape[1:]
    seed_everything(config.seed)  # the model's initial weights
    model = SimpleCNN(in_channels=c, num_classes=num_classes, image_size=(h, w)).double()
    setting = Setting(
        source=source,
        seed=config.seed,
        image_shape=(c, h, w),
        num_classes=num_classes,
        labels=tuple(int(k) for k in labels),
        label_names=tuple(names[int(k)] for k in labels) if names else (),
        dtype="float64",
    )
    return ExplainBatch(setting, model, images.double(), labels)
