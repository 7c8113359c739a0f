"""The walk's figures are real: they agree with an independent run and break when NumPy does."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gradsight.explain import ExplainConfig, Explanation, explain, load_batch
from gradsight.numpy_ref import relu

BACKWARD_NAMES = [
    "dL/dlogits", "fc.weight.grad", "fc.bias.grad", "dL/dflatten",
    "dL/drelu", "dL/dconv1", "conv1.bias.grad", "conv1.weight.grad",
]  # fmt: skip


def test_everything_matches(explanation: Explanation) -> None:
    assert explanation.ok and explanation.failures() == ()
    assert len(explanation.comparisons()) == 1 + 6 + 8 + 2 * 4 + 4
    assert [s.name for s in explanation.layers.forward] == [
        "input", "conv1", "relu", "pool", "flatten", "logits", "loss",
    ]  # fmt: skip
    assert [s.shape for s in explanation.layers.forward] == [
        (3, 1, 28, 28), (3, 16, 28, 28), (3, 16, 28, 28), (3, 16, 14, 14), (3, 3136), (3, 10), (),
    ]  # fmt: skip
    assert [s.name for s in explanation.layers.backward] == BACKWARD_NAMES
    for c in explanation.comparisons():
        assert c.max_rel_diff <= c.tolerance, c


def test_norms_and_loss_agree_with_an_independent_backward(explanation: Explanation) -> None:
    batch = load_batch(ExplainConfig(batch_size=3, seed=7))
    loss = F.cross_entropy(batch.model(batch.images), batch.labels)
    loss.backward()
    assert explanation.layers.loss == loss.item() == explanation.sgd.loss_before
    steps = {s.name: s for s in explanation.layers.backward}
    for name, p in batch.model.named_parameters():
        assert p.grad is not None
        assert steps[f"{name}.grad"].norm == pytest.approx(p.grad.norm().item(), rel=1e-12)
        assert steps[f"{name}.grad"].shape == tuple(p.shape)


def test_routing_and_mask_zero_what_they_should(explanation: Explanation) -> None:
    steps = {s.name: s for s in explanation.layers.backward}
    assert steps["dL/drelu"].nonzero <= 0.25  # one winner per 2x2 window at most
    assert steps["dL/dconv1"].nonzero < steps["dL/drelu"].nonzero  # the mask removes more
    assert steps["dL/dflatten"].norm == pytest.approx(steps["dL/drelu"].norm, rel=1e-12)


def test_zero_grad_doubles_exactly_and_sgd_matches(explanation: Explanation) -> None:
    z = explanation.zero_grad
    assert z.cleared and [r.name for r in z.rows] == [
        "conv1.weight", "conv1.bias", "fc.weight", "fc.bias",
    ]  # fmt: skip
    for r in z.rows:
        assert r.norm_twice == 2 * r.norm_once and r.twice.max_abs_diff == 0.0
    sgd = explanation.sgd
    assert sgd.lr == 0.01 and sgd.loss_after < sgd.loss_before
    steps = {s.name: s for s in explanation.layers.backward}
    for r in sgd.rows:
        assert r.update_norm == pytest.approx(0.01 * steps[f"{r.name}.grad"].norm, rel=1e-12)


def test_a_broken_numpy_backward_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_mask(dout: np.ndarray, cache: relu.ReluCache) -> np.ndarray:
        return dout  # forgets the ReLU mask

    monkeypatch.setattr("gradsight.numpy_ref.simple_cnn.relu_backward", no_mask)
    result = explain(ExplainConfig(batch_size=2, seed=1))
    assert not result.ok
    failed = [c.label for c in result.failures()]
    assert failed[:3] == [
        "backward dL/dconv1", "backward conv1.bias.grad", "backward conv1.weight.grad",
    ]  # fmt: skip
    assert failed[3:] == ["sgd conv1.weight", "sgd conv1.bias"]  # the step uses NumPy's grads
    assert all(c.max_rel_diff > 1e-3 for c in result.failures())
    upstream = {s.name: s.comparison.passed for s in result.layers.backward}
    assert upstream["dL/drelu"] and upstream["fc.weight.grad"]


def test_a_wrong_sgd_step_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    original = torch.optim.SGD.step

    def double_step(self: torch.optim.SGD, closure: None = None) -> None:
        original(self)
        original(self)

    monkeypatch.setattr(torch.optim.SGD, "step", double_step)
    result = explain(ExplainConfig(batch_size=2, seed=1))
    assert [c.label for c in result.failures()] == [
        "sgd conv1.weight", "sgd conv1.bias", "sgd fc.weight", "sgd fc.bias",
    ]  # fmt: skip
