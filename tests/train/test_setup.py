"""``build_optimizer`` against ``torch.optim`` built by hand with the same hyperparameters."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest
import torch
from torch import nn

from gradsight.config import OPTIMIZERS, TrainConfig
from gradsight.errors import ConfigError
from gradsight.train import build_optimizer, prepare

Reference = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]

# (TrainConfig settings, the torch.optim optimizer they must build). Every optimizer in
# OPTIMIZERS appears, SGD with and without momentum and weight decay.
CASES: list[tuple[dict[str, Any], Reference]] = [
    ({"optimizer": "sgd", "lr": 0.1}, lambda p: torch.optim.SGD(p, lr=0.1)),
    (
        {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9},
        lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
    ),
    (
        {"optimizer": "sgd", "lr": 0.1, "weight_decay": 0.05},
        lambda p: torch.optim.SGD(p, lr=0.1, weight_decay=0.05),
    ),
    (
        {"optimizer": "sgd", "lr": 0.05, "momentum": 0.8, "weight_decay": 0.1},
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.8, weight_decay=0.1),
    ),
    ({"optimizer": "adam", "lr": 0.01}, lambda p: torch.optim.Adam(p, lr=0.01)),
    (
        {"optimizer": "adam", "lr": 0.01, "weight_decay": 0.1},
        lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=0.1),
    ),
]
CASE_IDS = [
    "sgd",
    "sgd-momentum",
    "sgd-weight-decay",
    "sgd-momentum-weight-decay",
    "adam",
    "adam-weight-decay",
]


def _model() -> nn.Module:
    """Two layers with fixed weights; the first is frozen, as in fine-tuning."""
    model = nn.Sequential(nn.Linear(4, 5), nn.Linear(5, 3))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    model[0].requires_grad_(False)
    return model


def _steps(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[dict[str, torch.Tensor]]:
    """Step twice on fixed, different gradients; return the weights after each step.

    Two steps, because SGD's momentum buffer starts as the first gradient: momentum only
    changes the second update.
    """
    g = torch.Generator().manual_seed(1)
    after: list[dict[str, torch.Tensor]] = []
    for _ in range(2):
        for p in model.parameters():
            p.grad = torch.randn(p.shape, generator=g) if p.requires_grad else None
        optimizer.step()
        after.append({k: v.clone() for k, v in model.state_dict().items()})
    return after


def test_cases_cover_every_optimizer() -> None:
    assert sorted({settings["optimizer"] for settings, _ in CASES}) == sorted(OPTIMIZERS)


@pytest.mark.parametrize(("settings", "reference"), CASES, ids=CASE_IDS)
def test_build_optimizer_steps_like_torch_optim(
    settings: dict[str, Any], reference: Reference
) -> None:
    ours_model, ref_model = _model(), _model()
    config = TrainConfig(**settings)
    optimizer = build_optimizer(config, ours_model)
    ref_optimizer = reference(p for p in ref_model.parameters() if p.requires_grad)
    assert type(optimizer) is type(ref_optimizer)
    (group,) = optimizer.param_groups
    assert [id(p) for p in group["params"]] == [id(p) for p in ours_model[1].parameters()]

    initial = _model().state_dict()
    for step, (ours, expected) in enumerate(
        zip(_steps(ours_model, optimizer), _steps(ref_model, ref_optimizer), strict=True)
    ):
        for name in expected:
            assert torch.equal(ours[name], expected[name]), (step, name)
            moved = not torch.equal(expected[name], initial[name])
            assert moved is name.startswith("1."), (step, name)  # only the trainable layer

    # The hyperparameters matter here: the same optimizer and lr with every other setting at
    # torch's default ends elsewhere, so a dropped momentum or weight_decay cannot pass.
    if set(settings) - {"optimizer", "lr"}:
        plain_model = _model()
        plain_class = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}[config.optimizer]
        plain = plain_class(plain_model[1].parameters(), lr=config.lr)
        assert not torch.equal(_steps(plain_model, plain)[1]["1.weight"], expected["1.weight"])


def test_build_optimizer_rejects_an_unknown_name_with_the_valid_ones() -> None:
    config = TrainConfig()
    object.__setattr__(config, "optimizer", "rmsprop")  # past TrainConfig's own check
    with pytest.raises(
        ConfigError, match=r"^invalid optimizer 'rmsprop'. Valid optimizers: sgd, adam$"
    ):
        build_optimizer(config, _model())


def test_prepare_builds_the_configured_optimizer_over_the_model() -> None:
    config = TrainConfig(dataset="synthetic", device="cpu", lr=0.05, momentum=0.8, weight_decay=0.1)
    prepared = prepare(config)
    assert type(prepared.optimizer) is torch.optim.SGD
    (group,) = prepared.optimizer.param_groups
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.05, 0.8, 0.1)
    assert [id(p) for p in group["params"]] == [id(p) for p in prepared.model.parameters()]
