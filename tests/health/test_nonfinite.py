"""The nonfinite finding's replay choice and a loss_fn that fails in the replay."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from gradsight import GradMonitor
from gradsight.errors import ConfigError


class Log(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return torch.log(x)


def _ce(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
    return F.cross_entropy(model(batch["x"]), batch["y"])


def test_batch_needs_a_loss_fn() -> None:
    model = nn.Linear(2, 2)
    with pytest.raises(ConfigError, match=r"needs GradMonitor\(model, loss_fn=\.\.\.\)"):
        GradMonitor(model).check(0, batch={"x": torch.ones(1, 2)})
    with pytest.raises(ConfigError, match="not both"):
        GradMonitor(model, loss_fn=_ce).check(0, inputs=torch.ones(1, 2), batch={})


def test_a_failing_loss_fn_is_reported_not_raised() -> None:
    model = nn.Sequential(nn.Linear(4, 6), Log(), nn.Linear(6, 3))
    calls: list[int] = []

    def loss_fn(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("the data queue is closed")
        return _ce(model, batch)

    batch = {"x": torch.randn(5, 4), "y": torch.zeros(5, dtype=torch.long)}
    monitor = GradMonitor(model, loss_fn=loss_fn)
    loss_fn(model, batch).backward()
    assert monitor.check(0, batch=batch)
    (found,) = monitor.findings
    assert found.phase is None
    assert "the replay failed (RuntimeError: the data queue is closed)" in found.message


def test_without_a_batch_the_finding_says_how_to_learn_more() -> None:
    model = nn.Sequential(nn.Linear(4, 6), Log(), nn.Linear(6, 3))
    _ce(model, {"x": torch.randn(5, 4), "y": torch.zeros(5, dtype=torch.long)}).backward()
    monitor = GradMonitor(model)
    assert monitor.check(0)
    (found,) = monitor.findings
    assert found.phase is None and found.params == ("0.weight", "0.bias", "2.weight", "2.bias")
    assert found.message == (
        "NaN/Inf gradient in all 4 parameters; pass the batch to check() to learn where it was "
        "born; stopping"
    )
