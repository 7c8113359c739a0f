"""The article's warm-up: autograd on y = x^2 + 3x + 1 agrees with the derivative by hand."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gradsight.explain.comparison import Comparison, compare

__all__ = ["DERIVATIVE", "FUNCTION", "ScalarExample", "scalar_example"]

FUNCTION = "y = x² + 3x + 1"
DERIVATIVE = "dy/dx = 2x + 3"


@dataclass(frozen=True)
class ScalarExample:
    """``y`` and its derivative at ``x``, by autograd and by the formula."""

    x: float
    y: float
    autograd_grad: float  # x.grad after y.backward()
    formula_grad: float  # 2x + 3, evaluated
    comparison: Comparison


def scalar_example(x: float = 2.0) -> ScalarExample:
    """Differentiate ``y = x^2 + 3x + 1`` at ``x`` with autograd and with ``2x + 3``.

    >>> scalar_example(2.0).autograd_grad
    7.0
    """
    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    y = t**2 + 3 * t + 1
    y.backward()
    assert t.grad is not None  # a leaf that requires grad always gets one
    autograd_grad = t.grad.item()
    formula_grad = 2 * x + 3
    comparison = compare("scalar dy/dx", formula_grad, autograd_grad)
    return ScalarExample(x, y.item(), autograd_grad, formula_grad, comparison)
