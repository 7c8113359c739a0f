"""grad_stats and its helpers: exact counts and extremes, the same on every path."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from gradsight.autograd.gradstats import (
    Meter,
    Queued,
    Scratch,
    count_where,
    dense_view,
    grad_stats,
)


def _reference(g: torch.Tensor) -> tuple[float, float, int]:
    d = g.double()
    return float(d.norm()), float(d.abs().max()), int((d == 0).sum())


_DENSE = {
    "relu'd": torch.randn(64, 16, 32, 32).relu(),  # 4 chunks of the bool buffer, half zeros
    "negative zeros": torch.tensor([-0.0, 0.0, -2.5, 1.0]),
    "transposed": torch.randn(300, 7).relu().t(),
    "large transposed": torch.randn(512, 200).relu().t(),  # torch reductions, NumPy count
    "permuted 4-d": torch.randn(2, 3, 4, 5).permute(2, 0, 3, 1),
    "float64": torch.randn(1000, dtype=torch.float64).relu(),
    "one element": torch.tensor([-3.0]),
}


@pytest.mark.parametrize("name", list(_DENSE))
def test_numpy_path_gives_the_float64_reference(name: str) -> None:
    g = _DENSE[name]
    assert dense_view(g) is not None  # this case does take the NumPy path
    stats = grad_stats(g)
    norm, max_abs, zeros = _reference(g)
    assert stats is not None and stats.shape == tuple(g.shape) and stats.nonfinite == 0
    assert math.isclose(stats.norm, norm, rel_tol=1e-5)
    assert (stats.max_abs, stats.zeros) == (max_abs, zeros)
    norm_only = grad_stats(g, full=False)
    assert norm_only is not None and (norm_only.max_abs, norm_only.zeros) == (None, None)
    assert norm_only.norm == stats.norm


@pytest.mark.parametrize(
    "g",
    [
        torch.randn(8, 5).relu().half(),  # no NumPy view: torch ops
        torch.randn(8, 5).relu().bfloat16(),
        torch.randn(5, 1).relu().expand(5, 7),  # stride 0: seven copies of each value
        torch.randn(10, 10).relu()[:, ::3],  # a strided slice
    ],
    ids=["float16", "bfloat16", "expanded", "strided"],
)
def test_torch_path_gives_the_float64_reference(g: torch.Tensor) -> None:
    assert dense_view(g) is None
    stats = grad_stats(g, scratch=Scratch())
    norm, max_abs, zeros = _reference(g)
    assert stats is not None and stats.nonfinite == 0
    assert math.isclose(stats.norm, norm, rel_tol=1e-3)
    assert (stats.max_abs, stats.zeros) == (max_abs, zeros)


def test_dense_view_shares_the_tensors_memory() -> None:
    g = torch.arange(12.0).reshape(3, 4).t()
    view = dense_view(g)
    assert view is not None and view.shape == (12,)
    assert view.ctypes.data == g.data_ptr()
    assert sorted(view.tolist()) == sorted(g.flatten().tolist())


def test_nan_and_inf_are_counted_exactly_on_the_numpy_path() -> None:
    g = torch.tensor([1.0, math.nan, -math.inf, 0.0, -3.0])
    stats = grad_stats(g)
    assert stats is not None and stats.nonfinite == 2 and math.isnan(stats.norm)
    assert stats.max_abs == 3.0 and stats.zeros == 1


def test_overflowing_squares_give_the_exact_norm() -> None:
    stats = grad_stats(torch.full((2,), 3e38))  # 3e38**2 overflows float32, not float64
    assert stats is not None and stats.nonfinite == 0
    assert math.isclose(stats.norm, 3e38 * math.sqrt(2), rel_tol=1e-6)
    assert stats.max_abs == pytest.approx(3e38, rel=1e-6) and stats.zeros == 0


def test_count_where_is_exact_across_chunk_boundaries() -> None:
    flat = np.ones(3 * 2**18 + 5, dtype=np.float32)
    zeros_at = [0, 2**18 - 1, 2**18, 2 * 2**18 + 7, flat.size - 1]
    flat[zeros_at] = 0.0
    assert count_where(flat, np.equal, 0) == len(zeros_at)
    assert count_where(flat, np.less_equal, 0.5) == len(zeros_at)
    assert count_where(flat[:0], np.equal, 0) == 0


def test_scratch_counts_exactly_and_reuses_its_buffer() -> None:
    scratch = Scratch()
    g = torch.randn(64, 16, 32, 32).relu()
    assert int(scratch.count(torch.eq, g, 0)) == int((g == 0).sum())
    first = scratch.buffer(g.shape, torch.float32, g.device).data_ptr()
    small = torch.tensor([0.0, 1.0, 0.0])
    assert int(scratch.count(torch.eq, small, 0)) == 2
    assert scratch.buffer(small.shape, torch.float32, small.device).data_ptr() == first


def test_views_numpy_cannot_read_take_the_torch_path() -> None:
    base = torch.tensor([1.0, -2.0, 0.0])
    negated = torch._neg_view(base)  # lazily negated: numpy() refuses it
    assert dense_view(negated) is None
    stats = grad_stats(negated)
    assert stats is not None and (stats.max_abs, stats.zeros) == (2.0, 1)
    leaf = base.clone().requires_grad_()
    assert dense_view(leaf) is not None  # read through a detached view


_MIXED = [
    torch.tensor([1.5, -0.0, 0.0, math.nan, -math.inf, -4.0, 2.0]),
    torch.tensor([[0.25, 0.0], [-3.0, math.inf]], dtype=torch.float16),
    torch.tensor([0.0, 7.0, -7.5], dtype=torch.bfloat16),
    torch.randn(6, 5, dtype=torch.float64).relu().t(),
    torch.zeros(3),
]


_DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs CUDA"))]  # fmt: skip


@pytest.mark.parametrize("device", _DEVICES)
@pytest.mark.parametrize("full", [True, False])
def test_deferred_meter_reads_what_grad_stats_measures(full: bool, device: str) -> None:
    meter = Meter(full, defer=True)
    queued = [meter.measure(g.to(device)) for g in _MIXED]
    assert all(isinstance(q, Queued) for q in queued)  # nothing read yet
    for g, q in zip(_MIXED, queued, strict=True):
        got, want = meter.resolve(q), grad_stats(g, full)
        assert got is not None and want is not None
        assert (got.shape, got.nonfinite) == (want.shape, want.nonfinite)
        if full:  # with the norm alone only the CPU's exact NaN/Inf path adds these
            assert (got.max_abs, got.zeros) == (want.max_abs, want.zeros)
        assert math.isclose(got.norm, want.norm, rel_tol=1e-3) or (
            math.isnan(got.norm) and math.isnan(want.norm)
        )


class _Calls(TorchDispatchMode):
    """Records every aten call dispatched inside the block."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        self.calls.append(func.__name__)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize(("full", "budget"), [(True, 7), (False, 5)])
def test_a_deferred_gradient_costs_a_few_torch_calls_and_no_read(full: bool, budget: int) -> None:
    meter = Meter(full, defer=True)
    g = torch.randn(64, 16, 32, 32)
    with _Calls() as mode:
        meter.measure(g)
    calls = [c for c in mode.calls if not c.startswith("view")]  # views launch no kernel
    # full: nan_to_num, ne, sum, aminmax, the norm (CPU: dot and sqrt; CUDA: one
    # linalg_vector_norm), count_nonzero; the norm alone skips aminmax and count_nonzero
    assert len(calls) <= budget, calls
    assert not any(c.startswith(("_local_scalar_dense", "isfinite")) for c in calls)


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
def test_sparse_gradients_count_their_implicit_zeros() -> None:
    indices = torch.tensor([[0, 2, 2], [1, 0, 0]])  # (2, 0) twice: the values add up
    coo = torch.sparse_coo_tensor(
        indices, torch.tensor([3.0, -1.0, -1.5]), (4, 3), check_invariants=True
    )
    for g in (coo, coo.coalesce().to_sparse_csr()):
        stats = grad_stats(g)
        norm, max_abs, zeros = _reference(g.to_dense())
        assert stats is not None and stats.shape == (4, 3) and stats.nonfinite == 0
        assert math.isclose(stats.norm, norm, rel_tol=1e-6)
        assert (stats.max_abs, stats.zeros) == (max_abs, zeros) == (3.0, 10)
    deferred = Meter(full=True, defer=True)
    assert deferred.resolve(deferred.measure(coo)) == grad_stats(coo)  # measured at once


@pytest.mark.parametrize("defer", [False, True])
def test_complex_gradients_are_measured_by_modulus(defer: bool) -> None:
    g = torch.tensor([3 + 4j, 0j, -1j, complex(math.inf, 0)], dtype=torch.complex64)
    meter = Meter(full=True, defer=defer)
    stats = meter.resolve(meter.measure(g))
    assert stats is not None and stats.shape == (4,)
    assert (stats.nonfinite, stats.max_abs, stats.zeros) == (1, 5.0, 1)
    finite = meter.resolve(meter.measure(g[:3]))
    assert finite is not None and math.isclose(
        finite.norm, math.sqrt(26), rel_tol=1e-6
    )  # 25 + 0 + 1
