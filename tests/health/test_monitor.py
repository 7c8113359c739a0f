"""The gradient monitor on planted faults: each test names the exact module it expects."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from gradsight.checkpoint import load_checkpoint, save_checkpoint
from gradsight.config import TrainConfig
from gradsight.data.base import LoadedDataset
from gradsight.errors import ConfigError
from gradsight.health.findings import Finding
from gradsight.health.monitor import GradMonitor, MonitorConfig
from gradsight.models import SimpleCNN
from gradsight.train import (
    Observer,
    Prepared,
    TrainState,
    build_optimizer,
    fit,
    prepare,
    seed_everything,
)


class Log(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return torch.log(x)  # NaN for x < 0: born in the forward pass


class SqrtWhere(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return torch.where(x > 0, x.sqrt(), x)  # sqrt(x<0) is NaN, masked; its backward is not


class Exp(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return torch.exp(x * 200.0)  # overflows to Inf in the forward pass


class MaskedLog(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return torch.where(x > 0, torch.log(x), torch.zeros_like(x))  # NaN masked away


class Net(nn.Module):
    def __init__(self, middle: nn.Module) -> None:
        super().__init__()
        self.fc1 = nn.Linear(64, 16)
        self.middle = middle
        self.fc2 = nn.Linear(16, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.middle(self.fc1(x.flatten(1))))


def _run(
    data: LoadedDataset, model: nn.Module, tmp: Path | None = None, **cfg: object
) -> tuple[GradMonitor, str, int]:
    config = TrainConfig(**{"batch_size": 16, "epochs": 1, "log_every": 2, **cfg})  # type: ignore[arg-type]
    seed_everything(0)
    prepared = Prepared(config, data, model, build_optimizer(config, model), torch.device("cpu"))
    mcfg = MonitorConfig.of(config)  # log_every=2 from the config
    monitor = GradMonitor(model, mcfg, run_dir=tmp)
    result = fit(prepared, [monitor])
    return monitor, result.status, result.steps


def _first(monitor: GradMonitor, kind: str) -> Finding:
    return next(f for f in monitor.findings if f.kind == kind)


def test_nan_born_in_forward_names_the_parameterless_module(
    tiny_data: LoadedDataset, tmp_path: Path
) -> None:
    monitor, status, steps = _run(tiny_data, Net(Log()), tmp_path)
    found = _first(monitor, "nonfinite")
    assert (found.phase, found.module, found.op) == ("forward", "middle", "log")
    assert found.severity == "error"
    assert "born in the forward pass in middle (Log.forward), op log" in found.message
    assert status == "stopped" and steps == 1
    saved = torch.load(tmp_path / "nonfinite-step0.pt", weights_only=True)
    assert saved["inputs"].shape == (16, 1, 8, 8) and "fc1.weight" in saved["state"]
    assert torch.equal(saved["batch"]["targets"], saved["targets"])


def test_nan_born_in_backward_names_module_and_op(tiny_data: LoadedDataset) -> None:
    monitor, _, _ = _run(tiny_data, Net(SqrtWhere()))
    found = _first(monitor, "nonfinite")
    assert (found.phase, found.module, found.op) == ("backward", "middle", "SqrtBackward0")


def test_inf_by_overflow(tiny_data: LoadedDataset) -> None:
    monitor, _, _ = _run(tiny_data, Net(Exp()))
    found = _first(monitor, "nonfinite")
    assert (found.phase, found.module, found.op) == ("forward", "middle", "exp")


def test_masked_nan_is_a_warning_and_training_goes_on(tiny_data: LoadedDataset) -> None:
    monitor, status, steps = _run(tiny_data, Net(MaskedLog()))
    found = _first(monitor, "masked")
    assert (found.severity, found.phase, found.module, found.op) == (
        "warning", "forward", "middle", "log",
    )  # fmt: skip
    assert not any(f.kind == "nonfinite" for f in monitor.findings)
    assert status == "completed" and steps == 6


class DetachedCNN(SimpleCNN):
    def forward(self, x: Tensor) -> Tensor:
        x = self.pool(self.relu(self.conv1(x))).detach()  # conv1 gets no gradient
        return self.fc(torch.flatten(x, 1))


def test_detached_and_frozen_parameters(tiny_data: LoadedDataset) -> None:
    model = DetachedCNN(1, 3, 8)
    monitor, _, _ = _run(tiny_data, model)
    (detached,) = [f for f in monitor.findings if f.kind == "no_grad"]  # one for the group
    assert detached.params == ("conv1.weight", "conv1.bias") and detached.param == "conv1.bias"
    assert detached.severity == "warning" and detached.step == 0
    assert detached.message.startswith("2 parameters of conv1 got no gradient: detached")
    frozen = SimpleCNN(1, 3, 8)
    frozen.conv1.requires_grad_(False)
    monitor, _, _ = _run(tiny_data, frozen)
    (found,) = [f for f in monitor.findings if f.kind == "no_grad"]
    assert (found.params, found.severity) == (("conv1.weight", "conv1.bias"), "info")
    assert found.message.startswith("2 parameters of conv1 are frozen (requires_grad=False)")


def test_lr_10_is_exploding_before_the_loss_is_nan() -> None:
    config = TrainConfig(lr=10.0, epochs=1, device="cpu", on_nonfinite="warn")
    prepared = prepare(config)  # the article's CNN on the bundled Fashion-MNIST
    losses: list[float] = []

    class Watch(Observer):
        def on_after_forward(self, state: TrainState) -> None:
            losses.append(float(state.loss.detach()))  # type: ignore[union-attr]

        def on_after_step(self, state: TrainState) -> None:
            if state.step >= 30:
                state.request_stop("enough")

    monitor = GradMonitor(prepared.model, MonitorConfig(on_nonfinite="warn"))
    fit(prepared, [Watch(), monitor])
    exploding = _first(monitor, "exploding")
    first_nan_loss = next(i for i, loss in enumerate(losses) if loss != loss)
    assert exploding.step < first_nan_loss
    assert exploding.value is not None and exploding.value > 1e3
    assert "lower the lr or clip" in exploding.message


class SigmoidStack(nn.Module):
    def __init__(self, depth: int = 20) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(1, 4, 3, padding=1), nn.Sigmoid()]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(4, 4, 3, padding=1), nn.Sigmoid()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(4 * 8 * 8, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x).flatten(1))


def test_deep_sigmoid_stack_vanishes_in_its_first_layers(tiny_data: LoadedDataset) -> None:
    monitor, _, _ = _run(tiny_data, SigmoidStack(), epochs=2)
    vanished = [f.module for f in monitor.findings if f.kind == "vanishing"]
    assert "body.0" in vanished  # the first conv
    assert "head" not in vanished  # the last layer still learns


class NanAtStep(nn.Module):
    def __init__(self, at: int) -> None:
        super().__init__()
        self.at, self.calls = at, 0

    def forward(self, x: Tensor) -> Tensor:
        self.calls += 1
        return x * float("nan") if self.calls == self.at + 1 else x


def test_skip_leaves_the_weights_of_the_skipped_step_untouched(tiny_data: LoadedDataset) -> None:
    model = Net(NanAtStep(at=2))
    snapshots: dict[int, dict[str, Tensor]] = {}

    class Snap(GradMonitor):
        def on_before_forward(self, state) -> None:  # type: ignore[no-untyped-def]
            snapshots[state.step] = {k: v.clone() for k, v in model.state_dict().items()}
            super().on_before_forward(state)

    config = TrainConfig(batch_size=16, epochs=1, log_every=2, on_nonfinite="skip")
    prepared = Prepared(
        config, tiny_data, model, build_optimizer(config, model), torch.device("cpu")
    )
    monitor = Snap(model, MonitorConfig(on_nonfinite="skip", log_every=2))
    result = fit(prepared, [monitor])
    assert result.status == "completed" and monitor.skipped == 1
    before, after = snapshots[2], snapshots[3]  # step 2 was skipped
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not all(torch.equal(snapshots[1][k], before[k]) for k in before)  # others did update
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_update_ratio_is_measured_and_a_huge_lr_warned(tiny_data: LoadedDataset) -> None:
    model = SimpleCNN(1, 3, 8)
    config = TrainConfig(batch_size=16, epochs=1, log_every=2, lr=0.01)
    seed_everything(0)
    prepared = Prepared(
        config, tiny_data, model, build_optimizer(config, model), torch.device("cpu")
    )
    lines: list[dict[str, object]] = []
    expected: dict[str, float] = {}

    class Witness(Observer):
        def on_before_step(self, state: TrainState) -> None:
            if state.step == 1:  # plain SGD: the update is lr * grad
                for layer in ("conv1", "fc"):
                    ps = [p for n, p in model.named_parameters() if n.startswith(layer + ".")]
                    grad = math.sqrt(sum(float(p.grad.norm()) ** 2 for p in ps))  # type: ignore[union-attr]
                    weight = math.sqrt(sum(float(p.detach().norm()) ** 2 for p in ps))
                    expected[layer] = 0.01 * grad / weight

        def on_log(self, state: TrainState, record: object) -> None:
            lines.append(dict(state.extras))

    monitor = GradMonitor(model, MonitorConfig(log_every=2, update_every=2))
    fit(prepared, [monitor, Witness()])
    ratios = lines[0]["update_ratio"]
    assert isinstance(ratios, dict) and set(ratios) == {"conv1", "fc"}
    for layer, value in expected.items():
        assert math.isclose(ratios[layer], value, rel_tol=1e-4), layer

    model = SimpleCNN(1, 3, 8)
    config = TrainConfig(batch_size=16, epochs=1, log_every=2, lr=50.0, on_nonfinite="warn")
    prepared = Prepared(
        config, tiny_data, model, build_optimizer(config, model), torch.device("cpu")
    )
    monitor = GradMonitor(model, MonitorConfig(log_every=2, update_every=2, on_nonfinite="warn"))
    fit(prepared, [monitor])
    warned = [f for f in monitor.findings if f.kind == "update_ratio"]
    assert warned and "lr may be too high" in warned[0].message
    assert warned[0].value is not None and warned[0].value > 0.1


class HalfDead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(64, 16)
        with torch.no_grad():
            self.fc1.bias[:12] = -1e4  # 12 of 16 units can never be positive
        self.fc1.bias.requires_grad_(False)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(16, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x.flatten(1))))


def test_dead_relu_is_opt_in_and_names_the_module(tiny_data: LoadedDataset) -> None:
    torch.manual_seed(0)
    model = HalfDead()
    config = TrainConfig(batch_size=16, epochs=1, log_every=2)
    prepared = Prepared(
        config, tiny_data, model, build_optimizer(config, model), torch.device("cpu")
    )
    monitor = GradMonitor(model, MonitorConfig(log_every=2, dead_relu=True, dead_relu_every=3))
    fit(prepared, [monitor])
    dead = [f for f in monitor.findings if f.kind == "dead_relu"]
    assert [f.module for f in dead] == ["act", "act"]  # one report per 3-step window
    assert dead[0].value == 0.75 and "75% of its units never fired" in dead[0].message
    assert len(model.act._forward_hooks) == 0  # removed at the end
    quiet = GradMonitor(HalfDead(), MonitorConfig(log_every=2))
    assert quiet._relus is None  # off by default: no hooks


class SqrtRelu(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return torch.sqrt(torch.relu(x))  # d sqrt at 0 is inf; ReLU's backward masks it


def test_masked_in_backward_names_the_op(tiny_data: LoadedDataset) -> None:
    monitor, status, _ = _run(tiny_data, Net(SqrtRelu()))
    found = _first(monitor, "masked")
    assert (found.phase, found.module, found.op) == ("backward", "middle", "SqrtBackward0")
    assert status == "completed" and not any(f.kind == "nonfinite" for f in monitor.findings)


class Amplify(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: Tensor) -> Tensor:
        self.calls += self.training  # evaluation passes do not count
        if self.training and self.calls == 10 and x.requires_grad:  # step 9, a check step
            x.register_hook(lambda g: g * 1e4)  # fc1's gradient (only) is 1e4x too large
        return x


def test_one_layer_exploding_against_its_own_median(tiny_data: LoadedDataset) -> None:
    torch.manual_seed(0)
    monitor, _, _ = _run(tiny_data, Net(Amplify()), epochs=2, on_nonfinite="warn")
    layers = [f.module for f in monitor.findings if f.kind == "exploding" and f.module]
    assert "fc1" in layers
    found = next(f for f in monitor.findings if f.kind == "exploding" and f.module == "fc1")
    assert found.step == 9 and "is exploding" in found.message
    assert not any(f.kind == "exploding" for f in monitor.findings if f.step < 9)


def test_flag_read_every_n_steps_names_the_step_it_appeared_at(tiny_data: LoadedDataset) -> None:
    model = Net(NanAtStep(at=5))
    config = TrainConfig(batch_size=16, epochs=3, log_every=100)
    prepared = Prepared(
        config, tiny_data, model, build_optimizer(config, model), torch.device("cpu")
    )
    monitor = GradMonitor(model, MonitorConfig(log_every=100, check_every=4))
    result = fit(prepared, [monitor])
    found = _first(monitor, "nonfinite")
    assert found.step == 5 and "read at step 7" in found.message  # reads after steps 3, 7, ...
    assert "--nonfinite-check-every 1" in found.message
    assert result.status == "stopped" and result.steps == 8  # steps 0-7; 7 was not applied
    assert monitor.skipped == 1
    assert len(monitor.totals) == 5  # steps 0-4, all read, all finite


def test_flush_reads_the_flags_left_unread(tiny_data: LoadedDataset) -> None:
    model = Net(nn.Identity())
    monitor = GradMonitor(model, MonitorConfig(on_nonfinite="warn", check_every=10))
    x = tiny_data.train.images[:8].float()
    for step in range(3):
        model.zero_grad()
        scale = float("nan") if step == 2 else 1.0
        (model(x).sum() * scale).backward()
        assert monitor.check(step) is False
    assert monitor.findings == [] and len(monitor.totals) == 0  # nothing read yet
    monitor.flush()
    found = _first(monitor, "nonfinite")
    assert found.step == 2 and len(monitor.totals) == 2


def test_skip_policy_refuses_a_deferred_flag() -> None:
    with pytest.raises(ConfigError, match="--on-nonfinite skip must read the NaN/Inf flag"):
        MonitorConfig(on_nonfinite="skip", check_every=2)
    with pytest.raises(ConfigError, match="--nonfinite-check-every is 4; use 1"):
        TrainConfig(on_nonfinite="skip", nonfinite_check_every=4)
    with pytest.raises(ConfigError, match="must be an integer >= 1, got 0"):
        TrainConfig(nonfinite_check_every=0)


def test_state_dict_survives_a_checkpoint_and_nothing_is_reported_twice(
    tiny_data: LoadedDataset, tmp_path: Path
) -> None:
    model = SimpleCNN(1, 3, 8)
    model.conv1.requires_grad_(False)
    first, _, _ = _run(tiny_data, model)
    assert [f.kind for f in first.findings].count("no_grad") == 1  # conv1.weight and .bias
    path = tmp_path / "ck.pt"
    save_checkpoint([path], {"format": 1, "monitor": first.state_dict()}, step=6)
    second = GradMonitor(model, first.config)
    second.load_state_dict(load_checkpoint(path)["monitor"])  # the safe weights_only loader
    assert list(second.totals) == list(first.totals)
    assert second.state_dict() == first.state_dict()
    x, y = tiny_data.train.images[:16].float(), tiny_data.train.labels[:16]
    nn.functional.cross_entropy(model(x), y).backward()
    second.check(6)
    assert second.findings == []  # the frozen layer was already reported before the checkpoint
    assert len(second.totals) == len(first.totals) + 1


class OneHotRelu(nn.Module):
    """Unit k of ``act`` fires only for input row k (one-hot in, identity weights, bias -0.5)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        with torch.no_grad():
            self.fc.weight.copy_(torch.eye(4))
            self.fc.bias.fill_(-0.5)
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.fc(x))


def test_dead_relu_window_survives_a_checkpoint(tmp_path: Path) -> None:
    config = MonitorConfig(dead_relu=True, dead_relu_every=4)
    rows = torch.eye(4)
    whole_model = OneHotRelu()
    whole = GradMonitor(whole_model, config)
    for k in range(4):  # each unit fires once in the 4-step window
        whole_model(rows[k : k + 1])
    model = OneHotRelu()
    first = GradMonitor(model, config)
    for k in range(3):
        model(rows[k : k + 1])
    path = tmp_path / "ck.pt"
    save_checkpoint([path], {"format": 1, "monitor": first.state_dict()}, step=3)
    assert first._relus is not None
    first._relus.remove()  # the run dies here
    resumed = GradMonitor(model, config)
    resumed.load_state_dict(load_checkpoint(path)["monitor"])  # the weights_only loader
    model(rows[3:4])
    assert whole._relus is not None and resumed._relus is not None
    assert resumed._relus.dead_fractions() == whole._relus.dead_fractions() == {"act": 0.0}
    forgetful = GradMonitor(model, config)  # what a resume without the window would see
    model(rows[3:4])
    assert forgetful._relus is not None and forgetful._relus.dead_fractions() == {"act": 0.75}
