from __future__ import annotations

import torch
import torchvision
from torch import nn

from gradsight.autograd.attribution import ModuleAttribution
from gradsight.autograd.tensors import has_nonfinite


def test_innermost_module_and_root_ops() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Sequential(nn.Linear(4, 2)))
    with ModuleAttribution(model) as tracker:
        out = model(torch.randn(5, 3)).sum()
    addmm = out.grad_fn.next_functions[0][0]  # type: ignore[union-attr]
    assert tracker.module_of(addmm) == "2.0"
    assert tracker.module_of(out.grad_fn) is None  # .sum() ran outside the model
    assert all(
        len(m._forward_hooks) == 0 and len(m._forward_pre_hooks) == 0 for m in model.modules()
    )


def test_resnet_residual_add_and_reused_relu() -> None:
    model = torchvision.models.resnet18(num_classes=10).eval()
    with ModuleAttribution(model) as tracker:
        model(torch.randn(1, 3, 32, 32))
    by_module: dict[tuple[str, int], list[str]] = {}
    for node, name in tracker.owner.items():
        by_module.setdefault((name, tracker.call_of(node)), []).append(type(node).__name__)
    assert by_module[("layer1.0", 0)] == ["AddBackward0"]  # the residual add, in the block
    assert by_module[("layer1.0.relu", 0)] == ["ReluBackward0"]
    assert by_module[("layer1.0.relu", 1)] == ["ReluBackward0"]  # the block calls relu twice


def test_has_nonfinite_is_exact_when_a_finite_sum_overflows() -> None:
    assert not has_nonfinite(torch.full((4,), 3e38))  # the sum overflows; no entry is Inf
    assert has_nonfinite(torch.tensor([1.0, float("inf")]))
    assert has_nonfinite((torch.ones(2), {"x": torch.tensor([float("nan")])}))
    assert not has_nonfinite(torch.empty(0)) and not has_nonfinite(torch.arange(3))
    assert has_nonfinite(torch.tensor([float("-inf")], dtype=torch.float16))
