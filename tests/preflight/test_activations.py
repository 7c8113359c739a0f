"""The activation checks: all-dead ReLUs, saturated tanh, vanishing and exploding scale."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gradsight.preflight import check
from gradsight.preflight.activations import check_dead_relu
from gradsight.preflight.probe import LayerStat

from .nets import CLASSES, TinyResNet, tiny_batches

FAST = {"overfit_steps": 5, "lr_steps": 10}


class DeadReLUs(nn.Module):
    """A conv whose bias is so negative that its ReLU never fires."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(8 * 64, CLASSES)
        with torch.no_grad():
            self.conv.bias.fill_(-100.0)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.relu(self.conv(x)).flatten(1))


class SaturatedTanh(DeadReLUs):
    def __init__(self) -> None:
        super().__init__()
        with torch.no_grad():
            self.conv.weight.mul_(100)
            self.conv.bias.zero_()
        self.relu = nn.Tanh()  # type: ignore[assignment]


class Stack(nn.Module):
    """Eight linear layers with their default init scaled by ``gain``."""

    def __init__(self, gain: float) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten(), nn.Linear(64, 32)]
        for _ in range(7):
            layers += [nn.ReLU(), nn.Linear(32, 32)]
        self.net = nn.Sequential(*layers, nn.Linear(32, CLASSES))
        with torch.no_grad():
            for m in self.net[2:]:
                if isinstance(m, nn.Linear):
                    m.weight.mul_(gain)
                    m.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def test_all_dead_relus_fail() -> None:
    report = check(DeadReLUs(), tiny_batches(), **FAST)
    dead = report["dead_relu"]
    assert (dead.status, dead.value) == ("fail", 1.0)
    assert "100% of the units of relu never fire" in dead.message and "LeakyReLU" in dead.fix
    zero = report["missing_grad"]  # nothing passes the dead ReLU, forward or backward
    assert zero.status == "warn"
    assert zero.details["zero_grad"] == ["conv.weight", "conv.bias", "fc.weight"]


def test_dead_relu_thresholds_and_a_relu_called_twice() -> None:
    def stat(dead: float) -> LayerStat:
        return LayerStat("r", "relu", 1.0, True, dead=dead)

    assert [check_dead_relu([stat(d)]).status for d in (0.29, 0.3, 0.59, 0.6)] == [
        "pass", "warn", "warn", "fail"]  # fmt: skip
    report = check(TinyResNet(), tiny_batches(), **FAST)
    assert {"blocks.0.relu", "blocks.0.relu#2"} <= set(report["dead_relu"].details)


def test_saturated_tanh_fails() -> None:
    report = check(SaturatedTanh(), tiny_batches(), **FAST)
    sat = report["saturation"]
    assert sat.status == "fail" and sat.value > 0.5 and "relu" in sat.message
    assert check(TinyResNet(), tiny_batches(), **FAST)["saturation"].value is None


def test_vanishing_and_exploding_activation_scale() -> None:
    torch.manual_seed(0)
    vanishing = check(Stack(0.2), tiny_batches(), **FAST)["activation_scale"]
    assert vanishing.status == "fail" and vanishing.value < 1e-4
    assert "vanishes through depth" in vanishing.message and "kaiming" in vanishing.fix
    exploding = check(Stack(8.0), tiny_batches(), **FAST)["activation_scale"]
    assert exploding.status == "fail" and exploding.value > 1e4
    assert "explodes through depth" in exploding.message
    # the default init times sqrt(6) is kaiming's: the RMS stays put through the ReLUs
    healthy = check(Stack(6**0.5), tiny_batches(), **FAST)["activation_scale"]
    assert healthy.status == "pass" and 0.1 < healthy.value < 10
