"""linear against torch.nn.functional.linear, w shaped (out, in)."""

from __future__ import annotations

import numpy as np
import pytest
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from gradsight.errors import ConfigError
from gradsight.numpy_ref import gradcheck, linear_backward, linear_forward

from .helpers import DTYPES, PROPERTY, abs_scales, assert_matches, torch_grads


@pytest.mark.parametrize("dtype", DTYPES)
@PROPERTY
@given(
    n=st.integers(1, 8),
    n_in=st.integers(1, 300),
    n_out=st.integers(1, 12),
    seed=st.integers(0, 2**32 - 1),
)
def test_matches_autograd(dtype: type, n: int, n_in: int, n_out: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x, w = rng.normal(size=(n, n_in)).astype(dtype), rng.normal(size=(n_out, n_in)).astype(dtype)
    b = rng.normal(size=n_out).astype(dtype)
    out, cache = linear_forward(x, w, b)
    dout = rng.normal(size=(n, n_out)).astype(dtype)
    grads = linear_backward(dout, cache)
    ref_out, ref_grads = torch_grads(F.linear, [x, w, b], dout)
    scales = abs_scales(F.linear, [x, w, b], dout)  # sums may cancel: compare to their terms
    for mine, ref, scale in zip((out, *grads), (ref_out, *ref_grads), scales, strict=True):
        assert_matches(mine, ref, dtype, scale)


def test_gradcheck() -> None:
    rng = np.random.default_rng(0)
    x, w, b = rng.normal(size=(3, 5)), rng.normal(size=(4, 5)), rng.normal(size=4)
    dout = rng.normal(size=(3, 4))

    def loss_and_grads(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple[float, tuple]:
        out, cache = linear_forward(x, w, b)
        return float((out * dout).sum()), linear_backward(dout, cache)

    result = gradcheck(loss_and_grads, [x, w, b])
    assert result.passed, result


def test_unflattened_input_raises() -> None:
    with pytest.raises(ConfigError, match=r"x \[2, 4, 4\], w \[10, 16\].*flatten x first"):
        linear_forward(np.zeros((2, 4, 4)), np.zeros((10, 16)), np.zeros(10))
