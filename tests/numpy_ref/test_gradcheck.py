"""gradcheck itself: it passes right gradients, catches wrong ones, and leaves inputs alone."""

from __future__ import annotations

import numpy as np
import pytest

from gradsight.errors import ConfigError
from gradsight.numpy_ref import gradcheck, numerical_gradients


def test_numerical_gradient_of_a_cubic() -> None:
    x = np.array([[1.0, -2.0], [0.5, 3.0]])
    (grad,) = numerical_gradients(lambda x: float((x**3).sum()), [x])
    assert np.allclose(grad, 3 * x**2, rtol=1e-9, atol=0)


def test_passes_right_and_fails_wrong_gradients() -> None:
    x, y = np.array([1.0, 2.0, -1.0]), np.array([0.5, -4.0, 3.0])

    def right(x: np.ndarray, y: np.ndarray) -> tuple[float, list[np.ndarray]]:
        return float((x * y).sum()), [y, x]

    def wrong(x: np.ndarray, y: np.ndarray) -> tuple[float, list[np.ndarray]]:
        return float((x * y).sum()), [y, 1.01 * x]  # 1 % off on y's gradient

    ok = gradcheck(right, [x, y])
    assert ok.passed and max(ok.max_rel_errors) < 1e-9
    bad = gradcheck(wrong, [x, y])
    assert not bad.passed
    assert bad.max_rel_errors[0] < 1e-9 and bad.max_rel_errors[1] == pytest.approx(0.01)
    assert bad.max_abs_errors[1] == pytest.approx(0.02)  # 0.01 * max |x|


def test_inputs_are_not_modified() -> None:
    x = np.array([1.0, 2.0])
    gradcheck(lambda x: (float((x**2).sum()), [2 * x]), [x], eps=0.5)
    assert x.tolist() == [1.0, 2.0]


def test_wrong_number_of_gradients_raises() -> None:
    with pytest.raises(ConfigError, match="returned an array for 1 inputs"):
        gradcheck(lambda x: (float(x.sum()), np.ones_like(x)), [np.ones((2, 2))])
