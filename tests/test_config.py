from __future__ import annotations

from pathlib import Path

import pytest

from gradsight.config import TrainConfig
from gradsight.errors import ConfigError


def test_defaults_are_the_articles() -> None:
    c = TrainConfig()
    assert (c.optimizer, c.lr, c.momentum, c.batch_size, c.epochs, c.seed) == (
        "sgd", 0.01, 0.0, 64, 3, 42,
    )  # fmt: skip
    assert c.dataset == "fashion-mnist-mini" and c.model == "simple"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr": 0.0}, r"--lr must be positive, got 0.0"),
        ({"lr": -1.0}, r"--lr must be positive"),
        ({"batch_size": 0}, r"--batch-size must be positive, got 0"),
        ({"epochs": -2}, r"--epochs must be positive, got -2"),
        ({"optimizer": "rmsprop"}, r"invalid optimizer 'rmsprop'. Valid optimizers: sgd, adam"),
        ({"momentum": -0.5}, r"--momentum and --weight-decay must be >= 0"),
        ({"optimizer": "adam", "momentum": 0.9}, r"--momentum applies to sgd only"),
    ],
)
def test_bad_values_name_the_value(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**kwargs)  # type: ignore[arg-type]


def test_round_trip(tmp_path: Path) -> None:
    c = TrainConfig(lr=0.1, model="deep", data_dir="/x", epochs=1)
    c.save(tmp_path / "config.json")
    assert TrainConfig.load(tmp_path / "config.json") == c


def test_unknown_keys_refused() -> None:
    with pytest.raises(ConfigError, match=r"unknown config keys \['lrate'\]"):
        TrainConfig.from_dict({"lrate": 0.1})


def test_frozen() -> None:
    c = TrainConfig()
    with pytest.raises(AttributeError):
        c.lr = 1.0  # type: ignore[misc]


def test_top_level_names_resolve() -> None:
    import gradsight

    for name in gradsight.__all__:
        assert getattr(gradsight, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        gradsight.nope  # type: ignore[attr-defined]  # noqa: B018
