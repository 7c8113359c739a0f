"""Parameters that get no gradient: from the step it starts, one finding per group, in a
user's own loop on a ResNet-style model written here."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from gradsight import Finding, GradMonitor, MonitorConfig
from gradsight.health.nograd import NoGradWatch


class Block(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + x)


class ResNetish(nn.Module):
    """stem, layer1..layer4 (two blocks each), fc; ``cut`` detaches layer2's output."""

    def __init__(self, c: int = 4, classes: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, c, 3, padding=1)
        self.layer1 = nn.Sequential(Block(c), Block(c))
        self.layer2 = nn.Sequential(Block(c), Block(c))
        self.layer3 = nn.Sequential(Block(c), Block(c))
        self.layer4 = nn.Sequential(Block(c), Block(c))
        self.fc = nn.Linear(c, classes)
        self.cut = False

    def forward(self, x: Tensor) -> Tensor:
        x = self.layer2(self.layer1(self.conv1(x)))
        if self.cut:
            x = x.detach()  # everything before it gets no gradient
        x = self.layer4(self.layer3(x))
        return self.fc(x.mean((2, 3)))


def _loop(model: ResNetish, steps: int, set_to_none: bool, cut_at: int = 20) -> list[Finding]:
    torch.manual_seed(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    monitor = GradMonitor(model, MonitorConfig(log_every=10))
    x, y = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 0])
    for step in range(steps):
        model.cut = step >= cut_at
        opt.zero_grad(set_to_none=set_to_none)
        F.cross_entropy(model(x), y).backward()
        if not monitor.check(step, inputs=x, targets=y):
            opt.step()
    return [f for f in monitor.findings if f.kind == "no_grad"]


def _before_cut(model: nn.Module) -> tuple[str, ...]:
    before = {"conv1", "layer1", "layer2"}
    return tuple(n for n, _ in model.named_parameters() if n.split(".")[0] in before)


def test_a_detach_that_starts_at_step_20_is_reported_at_step_20() -> None:
    model = ResNetish()
    (found,) = _loop(model, 25, set_to_none=True)
    assert (found.step, found.severity, found.params) == (20, "warning", _before_cut(model))
    assert found.message.startswith(
        "26 parameters of conv1, layer1, layer2 got no gradient from step 20 on: detached ("
    )
    assert found.param == "layer2.1.bn2.bias"  # the last before the cut
    assert len(found.message) <= 300


def test_the_same_detach_under_zero_grad_set_to_none_false() -> None:
    model = ResNetish()
    (found,) = _loop(model, 30, set_to_none=False)  # a zero .grad stays: found at step 29
    assert (found.step, found.params) == (29, _before_cut(model))
    assert "got exactly zero gradients at step 29 (non-zero at step 19)" in found.message


def test_a_detach_from_the_start_and_a_frozen_backbone_are_one_finding_each() -> None:
    model = ResNetish()
    for name in ("layer3", "layer4"):
        getattr(model, name).requires_grad_(False)
    found = _loop(model, 3, set_to_none=True, cut_at=0)
    assert [(f.step, f.severity) for f in found] == [(0, "warning"), (0, "info")]
    assert found[0].message.startswith("26 parameters of conv1, layer1, layer2 got no gradient:")
    assert found[1].message == (
        "24 parameters of layer3, layer4 are frozen (requires_grad=False): no gradient, by design"
    )


def test_a_gradient_that_comes_back_and_goes_again_is_reported_again() -> None:
    model = ResNetish()
    watch = NoGradWatch(list(model.named_parameters()))
    x = torch.randn(2, 3, 8, 8)
    reports = []
    for step, cut in enumerate([False, True, False, True]):
        model.zero_grad(set_to_none=True)
        model.cut = cut
        model(x).sum().backward()
        present = sum(p.grad is not None for p in model.parameters())
        reports.append([f.step for f in watch.check(step, 0, present)])
    assert reports == [[], [1], [], [3]]


def test_state_dict_round_trip() -> None:
    model = ResNetish()
    watch = NoGradWatch(list(model.named_parameters()))
    model.cut = True
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    assert len(watch.check(0, 0, 7)) == 1
    again = NoGradWatch(list(model.named_parameters()))
    again.load_state_dict(watch.state_dict())
    assert again.state_dict() == watch.state_dict()
    assert again.check(1, 0, 7) == []  # already reported
    assert len(NoGradWatch(list(model.named_parameters())).check(1, 0, 7)) == 1  # not restored


def test_many_groups_stay_short() -> None:
    model = nn.Sequential(*[nn.Linear(2, 2) for _ in range(40)])
    for i in range(0, 40, 2):
        model[i].requires_grad_(False)  # every other layer: 20 separate modules
    watch = NoGradWatch(list(model.named_parameters()))
    model(torch.randn(1, 2)).sum().backward()
    (found,) = watch.check(0, 0, 40)
    assert len(found.message) <= 300 and len(found.params) == 40
    assert found.message.startswith("40 of 80 parameters, in 0, 2, 4")


def test_a_model_with_no_gradient_at_all_is_reported_on_a_log_step() -> None:
    model = nn.Linear(2, 2)
    monitor = GradMonitor(model, MonitorConfig(log_every=1))
    model(torch.randn(1, 2)).detach().sum()  # no backward reaches the model
    assert not monitor.check(0)
    (found,) = monitor.findings
    assert found.kind == "no_grad" and found.message.startswith("all 2 parameters got no gradient")
