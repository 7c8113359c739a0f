"""The scalar warm-up is computed, not printed from memory."""

from __future__ import annotations

import pytest

from gradsight.explain import scalar_example


@pytest.mark.parametrize(
    ("x", "y", "grad"), [(2.0, 11.0, 7.0), (-1.5, -1.25, 0.0), (5.0, 41.0, 13.0)]
)
def test_autograd_and_formula_agree(x: float, y: float, grad: float) -> None:
    s = scalar_example(x)
    assert (s.x, s.y, s.autograd_grad, s.formula_grad) == (x, y, grad, grad)
    assert s.comparison.passed and s.comparison.max_abs_diff == 0.0
