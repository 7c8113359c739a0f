"""flatten against torch.flatten(x, 1)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gradsight.numpy_ref import flatten_backward, flatten_forward, gradcheck

from .helpers import DTYPES, assert_matches, torch_grads


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(2, 3), (4, 16, 14, 14), (1, 2, 3, 4, 5)])
def test_matches_autograd(dtype: type, shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(len(shape))
    x = rng.normal(size=shape).astype(dtype)
    out, cache = flatten_forward(x)
    assert out.shape == (shape[0], int(np.prod(shape[1:])))
    dout = rng.normal(size=out.shape).astype(dtype)
    dx = flatten_backward(dout, cache)
    ref_out, (ref_dx,) = torch_grads(lambda t: torch.flatten(t, 1), [x], dout)
    assert_matches(out, ref_out, dtype)
    assert_matches(dx, ref_dx, dtype)
    assert np.array_equal(dx, ref_dx)


def test_gradcheck() -> None:
    rng = np.random.default_rng(0)
    x, dout = rng.normal(size=(2, 3, 2, 2)), rng.normal(size=(2, 12))

    def loss_and_grads(x: np.ndarray) -> tuple[float, list[np.ndarray]]:
        out, cache = flatten_forward(x)
        return float((out * dout).sum()), [flatten_backward(dout, cache)]

    assert gradcheck(loss_and_grads, [x]).passed
