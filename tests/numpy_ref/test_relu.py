"""ReLU against torch.relu, including inputs that are exactly 0."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from gradsight.numpy_ref import gradcheck, relu_backward, relu_forward

from .helpers import DTYPES, PROPERTY, assert_matches, torch_grads


@pytest.mark.parametrize("dtype", DTYPES)
@PROPERTY
@given(
    shape=st.lists(st.integers(1, 6), min_size=1, max_size=4),
    zero_fraction=st.floats(0.0, 0.5),
    seed=st.integers(0, 2**32 - 1),
)
def test_matches_autograd_with_exact_zeros(
    dtype: type, shape: list[int], zero_fraction: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape).astype(dtype)
    x[rng.random(shape) < zero_fraction] = 0.0
    x[rng.random(shape) < zero_fraction / 2] = -0.0
    out, cache = relu_forward(x)
    dout = rng.normal(size=shape).astype(dtype)
    dx = relu_backward(dout, cache)
    ref_out, (ref_dx,) = torch_grads(torch.relu, [x], dout)
    assert_matches(out, ref_out, dtype)
    assert_matches(dx, ref_dx, dtype)
    assert np.array_equal(dx, ref_dx)  # a mask: no rounding at all
    assert np.all(dx[x == 0] == 0)


def test_gradient_is_zero_at_zero_and_passes_nan_as_pytorch() -> None:
    x = np.array([-2.0, -0.0, 0.0, 1e-300, 3.0, np.nan])
    out, cache = relu_forward(x)
    dx = relu_backward(np.full(6, 5.0), cache)
    assert dx.tolist() == [0.0, 0.0, 0.0, 5.0, 5.0, 5.0]
    t = torch.tensor(x, requires_grad=True)
    torch.relu(t).backward(torch.full((6,), 5.0, dtype=torch.float64))
    assert t.grad is not None and t.grad.tolist() == dx.tolist()
    assert np.array_equal(out, [0.0, 0.0, 0.0, 1e-300, 3.0, np.nan], equal_nan=True)


def test_non_finite_gradient_is_blocked_where_x_is_not_positive() -> None:
    x = np.array([-1.0, 0.0, 2.0, 3.0])
    _, cache = relu_forward(x)
    dx = relu_backward(np.array([np.nan, np.inf, np.inf, np.nan]), cache)
    assert np.array_equal(dx, [0.0, 0.0, np.inf, np.nan], equal_nan=True)


def test_gradcheck_away_from_zero() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 4, 5))
    x[np.abs(x) < 1e-3] = 0.5  # keep finite differences off the kink
    dout = rng.normal(size=x.shape)

    def loss_and_grads(x: np.ndarray) -> tuple[float, list[np.ndarray]]:
        out, cache = relu_forward(x)
        return float((out * dout).sum()), [relu_backward(dout, cache)]

    result = gradcheck(loss_and_grads, [x])
    assert result.passed, result
