"""softmax_cross_entropy against torch.nn.functional.cross_entropy (mean reduction)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from gradsight.errors import ConfigError
from gradsight.numpy_ref import gradcheck, softmax_cross_entropy

from .helpers import DTYPES, PROPERTY, TOLERANCE, assert_matches


def _torch_loss_and_grad(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    t = torch.tensor(logits, requires_grad=True)
    loss = F.cross_entropy(t, torch.tensor(labels))
    loss.backward()
    assert t.grad is not None
    return loss.item(), t.grad.numpy()


@pytest.mark.parametrize("dtype", DTYPES)
@PROPERTY
@given(
    n=st.integers(1, 16),
    k=st.integers(2, 12),
    scale=st.sampled_from([0.1, 1.0, 30.0]),
    seed=st.integers(0, 2**32 - 1),
)
def test_matches_autograd(dtype: type, n: int, k: int, scale: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    logits = (scale * rng.normal(size=(n, k))).astype(dtype)
    labels = rng.integers(0, k, size=n)
    loss, dlogits = softmax_cross_entropy(logits, labels)
    ref_loss, ref_grad = _torch_loss_and_grad(logits, labels)
    assert abs(loss - ref_loss) <= TOLERANCE[dtype] * max(1.0, abs(ref_loss))
    assert_matches(dlogits, ref_grad, dtype, scale=1 / n)  # entries lie in [-1/N, 1/N]


def test_known_values_and_rows_sum_to_zero() -> None:
    logits = np.zeros((2, 4))
    loss, dlogits = softmax_cross_entropy(logits, np.array([1, 3]))
    assert loss == pytest.approx(np.log(4), abs=1e-15)
    assert dlogits.tolist() == [[0.125, -0.375, 0.125, 0.125], [0.125, 0.125, 0.125, -0.375]]
    assert np.allclose(dlogits.sum(axis=1), 0.0)


def test_huge_logits_stay_finite_and_match_torch() -> None:
    logits = np.array([[1000.0, -1000.0, 999.0], [-5e5, 5e5, 0.0]])
    labels = np.array([2, 0])
    loss, dlogits = softmax_cross_entropy(logits, labels)
    ref_loss, ref_grad = _torch_loss_and_grad(logits, labels)
    assert np.isfinite(loss) and np.all(np.isfinite(dlogits))
    assert loss == pytest.approx(ref_loss, rel=1e-12)  # (1.3133 + 1e6) / 2
    assert np.allclose(dlogits, ref_grad, rtol=0, atol=1e-15)


def test_gradcheck() -> None:
    rng = np.random.default_rng(0)
    labels = np.array([0, 2, 1, 2])

    def loss_and_grads(logits: np.ndarray) -> tuple[float, list[np.ndarray]]:
        loss, dlogits = softmax_cross_entropy(logits, labels)
        return loss, [dlogits]

    result = gradcheck(loss_and_grads, [rng.normal(size=(4, 3))])
    assert result.passed, result


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.array([0, 3]), "label 3 is not a class index in [0, 2]"),
        (np.array([0.0, 1.0]), "labels must be integer class indices, got float64"),
        (np.array([0]), "logits [2, 3] and labels [1] do not fit"),
    ],
)
def test_bad_labels_raise(labels: np.ndarray, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        softmax_cross_entropy(np.zeros((2, 3)), labels)
    assert message in str(exc.value)
