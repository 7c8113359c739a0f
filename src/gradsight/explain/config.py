"""What ``gradsight explain`` walks through: one frozen dataclass, checked when built."""

from __future__ import annotations

from dataclasses import dataclass

from gradsight.errors import ConfigError

__all__ = ["ARTICLE_LR", "MAX_RANDOM_BATCH", "ExplainConfig"]

#: The article's SGD learning rate.
ARTICLE_LR = 0.01
#: The largest random batch ``--like-article`` builds (explain keeps float64 copies of it all).
MAX_RANDOM_BATCH = 1024


@dataclass(frozen=True)
class ExplainConfig:
    """The batch and model the walk-through runs on.

    Args:
        batch_size: images in the batch (the article uses 4).
        seed: seeds the model's initial weights and the choice of batch.
        like_article: use the article's random 3x32x32 batch with random labels instead
            of real test images from the bundled data.
        lr: the SGD learning rate of the step shown at the end.

    Raises:
        ConfigError: a non-positive batch size or learning rate, or a random batch larger
            than :data:`MAX_RANDOM_BATCH`.
    """

    batch_size: int = 4
    seed: int = 42
    like_article: bool = False
    lr: float = ARTICLE_LR

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(
                f"--batch-size must be positive, got {self.batch_size}; the article uses 4"
            )
        if self.like_article and self.batch_size > MAX_RANDOM_BATCH:
            raise ConfigError(
                f"--batch-size {self.batch_size} is too large for --like-article; use at most "
                f"{MAX_RANDOM_BATCH} (explain keeps float64 copies of every activation)"
            )
        if not self.lr > 0:
            raise ConfigError(f"lr must be positive, got {self.lr!r}; the article uses 0.01")
