"""Mixed precision: steps a GradScaler skips are expected, reported only when they repeat.

The models are written here (an attention block, a residual MLP), not SimpleCNN. The CPU has
no fp16 overflow to speak of, so the overflow is made the way it happens on a GPU: a scale
so large that ``scale * gradient`` leaves float32's range, which the scaler then halves.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn
from torch.nn import functional as F

import gradsight
from gradsight.health.config import MonitorConfig
from gradsight.health.scaler import ScalerWatch, grad_factor
from gradsight.train.runfiles import read_metrics


class Attention(nn.Module):
    """One self-attention block and a head: (B, T, D) -> (B, classes)."""

    def __init__(self, d: int = 8, classes: int = 3) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(d, 2, batch_first=True)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, classes)
        self.poison = False

    def forward(self, x: Tensor) -> Tensor:
        h, _ = self.attn(x, x, x)
        h = self.norm(x + h)
        if self.poison:
            h = h.log()  # log of negatives: NaN at every loss scale
        return self.head(h.mean(1))


def loss_fn(model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
    x, y = batch
    return F.cross_entropy(model(x), y) * 50.0  # large gradients: overflow at 2**127


def _batches(n: int) -> list[tuple[Tensor, Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(4, 5, 8, generator=g), torch.randint(0, 3, (4,), generator=g))
            for _ in range(n)]  # fmt: skip


def _amp_loop(run: gradsight.WatchedRun, model: nn.Module, steps: int, unscale: bool) -> int:
    """A plain AMP loop; returns how many updates the scaler actually took."""
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**127, growth_interval=1000)
    taken = 0
    for step, batch in enumerate(_batches(steps)):
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = loss_fn(model, batch)
        scaler.scale(loss).backward()
        if unscale:
            scaler.unscale_(opt)
        if run.check(step, batch, scaler=scaler):
            break
        before = scaler.get_scale()
        scaler.step(opt)
        scaler.update()
        taken += scaler.get_scale() >= before  # the scale drops only on a skipped step
        run.log(step, loss=loss.item())
    return taken


@pytest.mark.parametrize("unscale", [True, False])
def test_overflowing_first_steps_are_counted_not_reported(tmp_path: Path, unscale: bool) -> None:
    torch.manual_seed(0)
    model = Attention()
    with gradsight.watch(model, loss_fn, tmp_path / "run") as run:
        taken = _amp_loop(run, model, 16, unscale)
    skipped = run.monitor.scaler_skipped
    assert 1 <= skipped < 10 and taken == 16 - skipped  # the first steps overflowed, then fine
    assert run.findings == []  # no fault reported
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["scaler_skipped_steps"] == skipped and summary["skipped_steps"] == 0
    last = read_metrics(tmp_path / "run" / "metrics.jsonl")[-1]
    assert last["scaler_skipped_steps"] == skipped
    assert not (tmp_path / "run" / "events.jsonl").exists()


@pytest.mark.parametrize("unscale", [True, False])
def test_norms_are_read_unscaled(unscale: bool) -> None:
    torch.manual_seed(0)
    model = Attention()
    batch = _batches(1)[0]
    loss_fn(model, batch).backward()
    true_total = float(torch.linalg.vector_norm(
        torch.stack([p.grad.norm() for p in model.parameters()])))  # fmt: skip
    model.zero_grad()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    scaler.scale(loss_fn(model, batch)).backward()
    if unscale:
        scaler.unscale_(opt)
    with gradsight.GradMonitor(model, loss_fn=loss_fn) as monitor:
        assert not monitor.check(0, batch=batch, scaler=scaler)
    assert monitor.last_total == pytest.approx(true_total, rel=1e-4)


def test_nan_at_every_scale_is_reported_after_patience(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = Attention()
    model.poison = True
    with gradsight.watch(model, loss_fn, tmp_path / "run", scaler_patience=12) as run:
        _amp_loop(run, model, 30, unscale=True)
    kinds = [f.kind for f in run.findings]
    assert kinds[:2] == ["scaler", "nonfinite"], kinds
    scaler_finding, nonfinite = run.findings[:2]
    assert scaler_finding.step == 11 and "12 steps in a row" in scaler_finding.message
    assert nonfinite.module == "" and nonfinite.op == "log"  # born in the root's forward
    assert run.steps == 12  # stopped there (on_nonfinite="stop")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "stopped" and summary["scaler_skipped_steps"] == 12
    events = [json.loads(line) for line in (tmp_path / "run" / "events.jsonl").open()]
    assert [e["kind"] for e in events][:2] == ["scaler", "nonfinite"]


def test_a_scale_below_one_is_reported() -> None:
    watch = ScalerWatch(patience=100)
    assert watch.skipped_step(0, 0, 2.0) is None
    found = watch.skipped_step(1, 0, 0.5)
    assert found is not None and "below 1" in found.message and found.severity == "error"
    watch.finite_step()
    assert watch.in_a_row == 0 and watch.skipped == 2


def test_a_run_of_skips_is_reported_once_and_again_after_recovery() -> None:
    watch = ScalerWatch(patience=2)
    found = [watch.skipped_step(s, 0, 1024.0) is not None for s in range(4)]
    watch.finite_step()
    found += [watch.skipped_step(s, 0, 1024.0) is not None for s in range(4, 6)]
    assert found == [False, True, False, False, False, True]


def test_scaler_state_survives_a_checkpoint() -> None:
    model = nn.Linear(3, 2)
    monitor = gradsight.GradMonitor(model)
    monitor._scaler.skipped_step(0, 0, 8.0)
    again = gradsight.GradMonitor(model)
    again.load_state_dict(monitor.state_dict())
    assert again.scaler_skipped == 1 and again._scaler.in_a_row == 1


def test_grad_factor_without_a_scaler_or_disabled() -> None:
    assert grad_factor(None) == 1.0
    assert grad_factor(torch.amp.GradScaler("cpu", enabled=False)) == 1.0
    assert math.isclose(grad_factor(torch.amp.GradScaler("cpu", init_scale=8.0)), 0.125)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_bad_patience_is_refused(bad: object) -> None:
    with pytest.raises(gradsight.ConfigError, match="scaler_patience"):
        gradsight.MonitorConfig(scaler_patience=bad)  # type: ignore[arg-type]


def test_a_finite_step_ends_the_run_of_skips() -> None:
    """Skips broken by a finite step (the scale found, then grown once too far) are not a
    run: patience counts skips in a row."""
    model = nn.GRU(3, 4)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    with gradsight.GradMonitor(model, MonitorConfig(scaler_patience=3)) as monitor:
        for step, bad in enumerate([True, True, False, True, True, False, True, True]):
            for p in model.parameters():
                p.grad = torch.full_like(p, math.nan if bad else 0.5)
            assert not monitor.check(step, scaler=scaler)
    assert monitor.scaler_skipped == 6 and monitor.findings == []
