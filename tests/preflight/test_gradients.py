"""The gradient checks: a frozen model, detached layers, an optimizer that misses
parameters, vanishing and NaN gradients."""

from __future__ import annotations

import torch
from torch import Tensor

from gradsight.preflight import check
from gradsight.preflight.gradients import check_grad_ratio
from gradsight.preflight.probe import ParamStat

from .nets import TinyResNet, tiny_batches

FAST = {"overfit_steps": 5, "lr_steps": 10}


class Detached(TinyResNet):
    """The head sees the features detached: nothing before it learns."""

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool(self.blocks(self.stem(x))).flatten(1)
        return self.head(self.drop(x.detach()))


class Tiny(TinyResNet):
    """Logits scaled by 1e-7: every gradient is ~1e-7 of what it should be."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x) * 1e-7


class SqrtOfZero(TinyResNet):
    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x) + torch.sqrt(self.stem(x) * 0).mean()  # d sqrt(0) = inf


def test_a_frozen_model_fails() -> None:
    model = TinyResNet().requires_grad_(False)
    report = check(model, tiny_batches(), **FAST)
    missing = report["missing_grad"]
    assert (missing.status, missing.value) == ("fail", "17 of 17")
    assert "No parameter will be trained" in missing.message and "frozen" in missing.message
    assert "requires_grad=True" in missing.fix
    assert report["overfit_batch"].status == "fail"
    assert report["lr_range"].status == "warn" and "could not run" in report["lr_range"].message


def test_detached_layers_and_parameters_outside_the_optimizer_warn() -> None:
    detached = check(Detached(), tiny_batches(), **FAST)["missing_grad"]
    assert (detached.status, detached.value) == ("warn", "15 of 17")
    assert detached.details["no_grad"][0] == "stem.0.weight"
    assert "detached or unused" in detached.message
    model = TinyResNet()
    head_only = torch.optim.SGD(model.head.parameters(), lr=0.1)
    outside = check(model, tiny_batches(), optimizer=head_only, **FAST)["missing_grad"]
    assert outside.status == "warn" and len(outside.details["not_in_optimizer"]) == 15
    assert "not in the optimizer" in outside.message


def test_vanishing_and_nonfinite_gradients() -> None:
    tiny = check(Tiny(), tiny_batches(), **FAST)["grad_ratio"]
    assert tiny.status == "warn" and "vanishing gradient" in tiny.message
    nan = check(SqrtOfZero(), tiny_batches(), **FAST)["grad_ratio"]
    assert (nan.status, nan.value) == ("fail", "nonfinite")
    assert nan.details["nonfinite"][0] == "stem.0.weight"
    assert check(TinyResNet(), tiny_batches(), **FAST)["grad_ratio"].status == "pass"


def test_grad_ratio_thresholds() -> None:
    def weight(name: str, grad: float) -> ParamStat:
        return ParamStat(name, (2, 2), True, True, 1.0, grad, True)

    assert check_grad_ratio([weight("a", 1e-3), weight("b", 1e-2)]).status == "pass"
    assert check_grad_ratio([weight("a", 1e-7)]).status == "warn"  # vanishing
    assert check_grad_ratio([weight("a", 1e3)]).status == "warn"  # exploding
    spread = check_grad_ratio([weight("a", 1e-5), weight("b", 1.0)])
    assert spread.status == "warn" and "1e+05x faster" in spread.message
