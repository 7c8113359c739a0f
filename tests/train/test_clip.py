"""Clipping is the loop's job: `TrainConfig.clip_grad_norm` is honoured with no monitor, and a
NaN/Inf gradient never reaches the weights, even when the monitor reads its flag late."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from gradsight import GradMonitor, MonitorConfig, TrainConfig
from gradsight.data.base import LoadedDataset
from gradsight.train import Observer, Prepared, TrainState, build_optimizer, fit, seed_everything
from gradsight.train.clip import clip_gradients


class Poisoned(nn.Module):
    """A small MLP whose hidden layer turns NaN while ``armed``."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(64, 16)
        self.fc2 = nn.Linear(16, 3)
        self.armed = False

    def forward(self, x: Tensor) -> Tensor:
        h = torch.relu(self.fc1(x.flatten(1)))
        if self.armed:
            h = h * float("nan")
        return self.fc2(h)


class Watch(Observer):
    """Record the total gradient norm the optimizer steps with, and arm the poison."""

    def __init__(self, model: Poisoned, poison_at: int | None = None) -> None:
        self.model, self.poison_at = model, poison_at
        self.norms: list[float] = []
        self.clipped = 0
        model_params = list(model.parameters())

        def pre_step(optimizer: torch.optim.Optimizer, args: object, kwargs: object) -> None:
            grads = [p.grad for p in model_params if p.grad is not None]
            self.norms.append(float(torch.stack([g.norm() for g in grads]).norm()))

        self.pre_step = pre_step

    def on_train_start(self, state: TrainState) -> None:
        state.optimizer.register_step_pre_hook(self.pre_step)

    def on_before_forward(self, state: TrainState) -> None:
        self.model.armed = state.step == self.poison_at

    def on_train_end(self, state: TrainState, status: str) -> None:
        self.clipped = state.clipped_steps


def _fit(
    data: LoadedDataset, observers: list[Observer], model: Poisoned, **cfg: object
) -> tuple[str, int]:
    config = TrainConfig(batch_size=16, epochs=2, log_every=2, **cfg)  # type: ignore[arg-type]
    seed_everything(0)
    prepared = Prepared(config, data, model, build_optimizer(config, model), torch.device("cpu"))
    result = fit(prepared, observers)
    return result.status, result.steps


def test_fit_clips_with_no_monitor_attached(tiny_data: LoadedDataset) -> None:
    model = Poisoned()
    watch = Watch(model)
    status, steps = _fit(tiny_data, [watch], model, clip_grad_norm=1e-3)
    assert status == "completed" and steps == 12
    assert len(watch.norms) == 12 and max(watch.norms) <= 1e-3 * (1 + 1e-5)
    assert watch.clipped == 12  # every step's norm was above 1e-3


def test_fit_reuses_the_monitors_norm_and_clips_the_same(
    tiny_data: LoadedDataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    computed: list[int] = []
    total_norm = torch.nn.utils.get_total_norm
    monkeypatch.setattr(
        torch.nn.utils, "get_total_norm", lambda *a, **k: computed.append(1) or total_norm(*a, **k)
    )
    model = Poisoned()
    watch = Watch(model)
    monitor = GradMonitor(model, MonitorConfig(log_every=2))
    _fit(tiny_data, [monitor, watch], model, clip_grad_norm=1e-3)
    assert max(watch.norms) <= 1e-3 * (1 + 1e-5) and watch.clipped == 12
    assert computed == []  # the monitor's total norm was used, not computed again
    _fit(tiny_data, [Watch(model)], model, clip_grad_norm=1e-3)
    assert len(computed) == 12


def test_a_nan_gradient_is_never_clipped_into_the_weights(tiny_data: LoadedDataset) -> None:
    model = Poisoned()
    watch = Watch(model, poison_at=5)
    monitor = GradMonitor(model, MonitorConfig(on_nonfinite="warn", check_every=4, log_every=4))
    status, steps = _fit(
        tiny_data, [watch, monitor], model, clip_grad_norm=1.0, on_nonfinite="warn",
        nonfinite_check_every=4,
    )  # fmt: skip
    assert status == "completed" and steps == 12
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert len(watch.norms) == 11  # the optimizer never stepped at step 5
    late = next(f for f in monitor.findings if f.kind == "nonfinite")
    assert late.step == 5 and "read at step 7" in late.message


def test_clip_gradients_leaves_a_nan_gradient_alone() -> None:
    w = torch.zeros(3, requires_grad=True)
    w.grad = torch.tensor([1.0, float("nan"), 2.0])
    total, go = clip_gradients([w], 1.0)
    assert math.isnan(total) and not go
    assert torch.equal(w.grad[[0, 2]], torch.tensor([1.0, 2.0]))  # not scaled
