"""retained_activations records each layer's output and gradient, then removes its hooks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gradsight.errors import ModelError
from gradsight.explain.capture import retained_activations
from gradsight.models import SimpleCNN


def test_records_outputs_and_gradients_then_removes_hooks() -> None:
    torch.manual_seed(0)
    model = SimpleCNN(1, 10, 8)
    x, y = torch.randn(2, 1, 8, 8), torch.tensor([1, 2])
    with retained_activations(model) as acts:
        logits = model(x)
    assert sorted(acts) == ["conv1", "flatten", "logits", "pool", "relu"]
    assert acts["logits"] is logits and acts["flatten"].shape == (2, 256)
    F.cross_entropy(logits, y).backward()
    grad = acts["flatten"].grad
    assert grad is not None
    torch.testing.assert_close(grad, acts["logits"].grad @ model.fc.weight, rtol=0, atol=1e-7)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_hooks_are_removed_after_an_error() -> None:
    model = SimpleCNN(1, 10, 8)
    with pytest.raises(RuntimeError), retained_activations(model):
        model(torch.randn(2, 3, 8, 8))  # wrong channel count
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_other_models_are_refused() -> None:
    model = nn.Sequential(nn.Linear(2, 2))
    with (
        pytest.raises(ModelError, match="Sequential has no conv1, relu, pool, fc"),
        retained_activations(model),
    ):
        pass
