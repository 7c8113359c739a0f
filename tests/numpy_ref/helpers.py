"""Shared pieces of the NumPy-reference tests: tolerances, hypothesis settings, torch twins."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from hypothesis import HealthCheck, settings

from gradsight.numpy_ref import max_abs_diff

#: Largest relative error (vs the largest magnitude) allowed against autograd, per dtype.
TOLERANCE = {np.float64: 1e-10, np.float32: 1e-5}
DTYPES = (np.float64, np.float32)

#: Moderate example counts keep the suite fast; no example database is written to disk.
#: (Fuzz more with ``derandomize=False`` and ``--hypothesis-seed=N``.)
PROPERTY = settings(
    max_examples=40,
    deadline=None,
    database=None,
    derandomize=True,  # the same examples every run: a failure always reproduces
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def torch_grads(
    fn: Callable[..., torch.Tensor], inputs: Sequence[np.ndarray], dout: np.ndarray
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Return ``fn``'s output and autograd's gradient of ``sum(out * dout)`` per input."""
    tensors = [torch.tensor(x, requires_grad=True) for x in inputs]
    out = fn(*tensors)
    out.backward(torch.tensor(dout))
    grads = [t.grad.numpy() if t.grad is not None else np.zeros_like(x)
             for t, x in zip(tensors, inputs, strict=True)]  # fmt: skip
    return out.detach().numpy(), grads


def abs_scales(
    fn: Callable[..., torch.Tensor], inputs: Sequence[np.ndarray], dout: np.ndarray
) -> list[float]:
    """Return the largest magnitude of ``fn``'s output and of each input gradient, computed
    by autograd in float64 on ``|inputs|`` and ``|dout|``.

    That is the sum of |terms| behind each entry, which bounds the rounding error of any
    summation order: a sum that cancels to ~0 can differ by ~eps * this between two correct
    float32 implementations, however small the sum itself.
    """
    magnitudes = [np.abs(x).astype(np.float64) for x in inputs]
    out, grads = torch_grads(fn, magnitudes, np.abs(dout).astype(np.float64))
    return [float(np.max(a, initial=0.0)) for a in (out, *grads)]


def assert_matches(
    actual: np.ndarray, expected: np.ndarray, dtype: type, scale: float = 0.0
) -> None:
    """Assert same shape and dtype, and error within the dtype's tolerance.

    The error is relative to ``max(max |expected|, scale)``; pass a ``scale`` from
    :func:`abs_scales` for results that are sums of many terms.
    """
    assert actual.shape == expected.shape
    assert actual.dtype == dtype, actual.dtype
    diff = max_abs_diff(actual, expected)
    denominator = max(float(np.max(np.abs(expected), initial=0.0)), scale)
    err = diff / denominator if denominator > 0 else (0.0 if diff == 0 else math.inf)
    assert err <= TOLERANCE[dtype], f"max relative error {err:.3g} > {TOLERANCE[dtype]}"
