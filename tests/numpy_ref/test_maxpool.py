"""Max pooling against torch's, with ties routed to the element PyTorch picks."""

from __future__ import annotations

import numpy as np
import pytest
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from gradsight.errors import ConfigError
from gradsight.numpy_ref import gradcheck, maxpool2d_backward, maxpool2d_forward

from .helpers import DTYPES, PROPERTY, assert_matches, torch_grads


@st.composite
def pool_cases(draw: st.DrawFn) -> tuple[tuple[int, ...], int, int, bool, int]:
    kernel, stride = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    shape = (
        draw(st.integers(1, 3)),
        draw(st.integers(1, 3)),
        draw(st.integers(kernel, 9)),
        draw(st.integers(kernel, 9)),
    )
    return shape, kernel, stride, draw(st.booleans()), draw(st.integers(0, 2**32 - 1))


@pytest.mark.parametrize("dtype", DTYPES)
@PROPERTY
@given(case=pool_cases())
def test_matches_autograd_including_ties(dtype: type, case: tuple) -> None:
    shape, kernel, stride, ties, seed = case
    rng = np.random.default_rng(seed)
    # small integers make most windows hold several equal maxima
    x = rng.integers(-2, 3, size=shape) if ties else rng.normal(size=shape)
    x = x.astype(dtype)
    out, cache = maxpool2d_forward(x, kernel, stride)
    dout = rng.normal(size=out.shape).astype(dtype)
    dx = maxpool2d_backward(dout, cache)
    ref_out, (ref_dx,) = torch_grads(lambda t: F.max_pool2d(t, kernel, stride), [x], dout)
    assert_matches(out, ref_out, dtype)
    assert_matches(dx, ref_dx, dtype)
    if stride >= kernel:  # windows do not overlap: each input gets one dout or 0, exactly
        assert np.array_equal(dx, ref_dx)


def test_ties_go_to_first_max_in_row_major_order() -> None:
    x = np.array([[[[1.0, 1.0], [1.0, 1.0]], [[0.0, 2.0], [2.0, 0.0]], [[0.0, 0.0], [3.0, 3.0]]]])
    out, cache = maxpool2d_forward(x)
    assert out.ravel().tolist() == [1.0, 2.0, 3.0]
    dx = maxpool2d_backward(np.array([[[[5.0]], [[6.0]], [[7.0]]]]), cache)
    assert dx.tolist() == [[[[5, 0], [0, 0]], [[0, 6], [0, 0]], [[0, 0], [7, 0]]]]


def test_overlapping_windows_sum_their_gradients() -> None:
    x = np.array([[[[0.0, 3.0, 3.0], [3.0, 0.0, 3.0], [3.0, 3.0, 3.0]]]])
    out, cache = maxpool2d_forward(x, kernel=2, stride=1)
    dx = maxpool2d_backward(np.ones_like(out), cache)
    assert dx.tolist() == [[[[0, 2, 0], [1, 0, 1], [0, 0, 0]]]]  # as torch: checked in a probe


def test_nan_windows_route_as_pytorch() -> None:
    x = np.array([[[[np.nan, 1.0, 0.0, 5.0], [np.nan, 2.0, 3.0, np.nan]]]])
    out, cache = maxpool2d_forward(x)
    dx = maxpool2d_backward(np.array([[[[4.0, 6.0]]]]), cache)
    ref_out, (ref_dx,) = torch_grads(
        lambda t: F.max_pool2d(t, 2, 2), [x], np.array([[[[4.0, 6.0]]]])
    )
    assert np.array_equal(out, ref_out, equal_nan=True) and np.isnan(out).all()
    assert dx.tolist() == ref_dx.tolist() == [[[[0, 0, 0, 0], [4, 0, 0, 6]]]]


def test_non_finite_gradients_reach_only_the_winners() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(1, 2, 4, 4))
    _, cache = maxpool2d_forward(x)
    dout = np.array([[[[np.nan, 1.0], [np.inf, -2.0]], [[3.0, -np.inf], [0.5, 4.0]]]])
    dx = maxpool2d_backward(dout, cache)
    _, (ref_dx,) = torch_grads(lambda t: F.max_pool2d(t, 2, 2), [x], dout)
    assert np.array_equal(dx, ref_dx, equal_nan=True)
    assert np.count_nonzero(dx == 0) == 2 * 16 - 8  # 8 winners; NaN does not leak


def test_gradcheck_without_ties() -> None:
    rng = np.random.default_rng(1)
    x = rng.permutation(2 * 3 * 6 * 7).reshape(2, 3, 6, 7) * 0.01  # distinct, 0.01 apart
    dout = rng.normal(size=(2, 3, 3, 3))

    def loss_and_grads(x: np.ndarray) -> tuple[float, list[np.ndarray]]:
        out, cache = maxpool2d_forward(x)
        return float((out * dout).sum()), [maxpool2d_backward(dout, cache)]

    result = gradcheck(loss_and_grads, [x])
    assert result.passed, result


def test_bad_windows_raise() -> None:
    with pytest.raises(ConfigError, match="a 3x3 window does not fit a 2x4"):
        maxpool2d_forward(np.zeros((1, 1, 2, 4)), kernel=3)
    with pytest.raises(ConfigError, match=r"kernel must be positive integers, got \(0, 0\)"):
        maxpool2d_forward(np.zeros((1, 1, 2, 4)), kernel=0)
