"""ExplainConfig refuses values that cannot make a walk-through."""

from __future__ import annotations

import dataclasses

import pytest

from gradsight.errors import ConfigError
from gradsight.explain import MAX_RANDOM_BATCH, ExplainConfig


def test_defaults_are_the_articles() -> None:
    config = ExplainConfig()
    assert (config.batch_size, config.seed, config.like_article, config.lr) == (4, 42, False, 0.01)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.batch_size = 8  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "--batch-size must be positive, got 0; the article uses 4"),
        ({"batch_size": -3}, "--batch-size must be positive, got -3"),
        (
            {"batch_size": MAX_RANDOM_BATCH + 1, "like_article": True},
            f"--batch-size 1025 is too large for --like-article; use at most {MAX_RANDOM_BATCH}",
        ),
        ({"lr": 0.0}, "lr must be positive, got 0.0"),
    ],
)
def test_bad_values_raise(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        ExplainConfig(**kwargs)  # type: ignore[arg-type]
    assert message in str(exc.value)


def test_large_batch_is_fine_from_the_data() -> None:
    assert ExplainConfig(batch_size=MAX_RANDOM_BATCH + 1).batch_size == 1025
