"""conv2d against torch.nn.functional.conv2d, over random shapes, strides and paddings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from gradsight.errors import ConfigError
from gradsight.numpy_ref import conv2d_backward, conv2d_forward, gradcheck

from .helpers import DTYPES, PROPERTY, abs_scales, assert_matches, torch_grads


@st.composite
def conv_cases(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[int, ...], int, int, int]:
    n, c, f = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 4))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride, padding = draw(st.integers(1, 3)), draw(st.integers(0, 2))
    h = draw(st.integers(max(1, kh - 2 * padding), 9))
    w = draw(st.integers(max(1, kw - 2 * padding), 9))
    return (n, c, h, w), (f, c, kh, kw), stride, padding, draw(st.integers(0, 2**32 - 1))


@pytest.mark.parametrize("dtype", DTYPES)
@PROPERTY
@given(case=conv_cases())
def test_matches_autograd(dtype: type, case: tuple) -> None:
    x_shape, w_shape, stride, padding, seed = case
    rng = np.random.default_rng(seed)
    x, w = rng.normal(size=x_shape).astype(dtype), rng.normal(size=w_shape).astype(dtype)
    b = rng.normal(size=w_shape[0]).astype(dtype)
    out, cache = conv2d_forward(x, w, b, stride=stride, padding=padding)
    dout = rng.normal(size=out.shape).astype(dtype)
    grads = conv2d_backward(dout, cache)

    def conv(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, w, b, stride=stride, padding=padding)

    ref_out, ref_grads = torch_grads(conv, [x, w, b], dout)
    scales = abs_scales(conv, [x, w, b], dout)  # sums may cancel: compare to their terms
    for mine, ref, scale in zip((out, *grads), (ref_out, *ref_grads), scales, strict=True):
        assert_matches(mine, ref, dtype, scale)


def test_known_values() -> None:
    x = np.arange(9.0).reshape(1, 1, 3, 3)  # [[0,1,2],[3,4,5],[6,7,8]]
    w = np.ones((1, 1, 2, 2))
    out, cache = conv2d_forward(x, w, np.array([0.5]))
    assert out.tolist() == [[[[8.5, 12.5], [20.5, 24.5]]]]  # 2x2 window sums + 0.5
    dx, dw, db = conv2d_backward(np.ones((1, 1, 2, 2)), cache)
    assert dx.tolist() == [[[[1, 2, 1], [2, 4, 2], [1, 2, 1]]]]  # how many windows cover each
    assert dw.tolist() == [[[[8, 12], [20, 24]]]] and db.tolist() == [4]


@pytest.mark.parametrize(("stride", "padding"), [(1, 0), (1, 1), (2, 1), (3, 2)])
def test_gradcheck(stride: int, padding: int) -> None:
    rng = np.random.default_rng(stride * 10 + padding)
    x, w, b = rng.normal(size=(2, 2, 5, 6)), rng.normal(size=(3, 2, 3, 2)), rng.normal(size=3)
    dout = rng.normal(size=conv2d_forward(x, w, b, stride, padding)[0].shape)

    def loss_and_grads(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple[float, tuple]:
        out, cache = conv2d_forward(x, w, b, stride, padding)
        return float((out * dout).sum()), conv2d_backward(dout, cache)

    result = gradcheck(loss_and_grads, [x, w, b])
    assert result.passed, result


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "b_shape", "kwargs", "message"),
    [
        ((1, 2, 5, 5), (4, 3, 3, 3), (4,), {}, "x has 2 channels but w expects 3"),
        ((1, 3, 5, 5), (4, 3, 3, 3), (3,), {}, "b must have shape [4], got [3]"),
        ((1, 3, 5, 5), (4, 3, 3, 3), (4,), {"stride": 0}, "stride must be a positive integer"),
        ((1, 3, 5, 5), (4, 3, 3, 3), (4,), {"padding": -1}, "padding must be an integer >= 0"),
        ((1, 3, 2, 5), (4, 3, 3, 3), (4,), {}, "a 3x3 window does not fit a 2x5"),
        ((3, 5, 5), (4, 3, 3, 3), (4,), {"padding": 1}, "input must be 4-D (N, C, H, W)"),
    ],
)
def test_bad_arguments_raise_config_error(
    x_shape: tuple, w_shape: tuple, b_shape: tuple, kwargs: dict, message: str
) -> None:
    with pytest.raises(ConfigError) as exc:
        conv2d_forward(np.zeros(x_shape), np.zeros(w_shape), np.zeros(b_shape), **kwargs)
    assert message in str(exc.value)
