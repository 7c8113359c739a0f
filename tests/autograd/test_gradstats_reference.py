"""Every fast path of grad_stats against reference_stats, the slow plain-torch definition."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from gradsight.autograd.gradstats import (
    GradStats,
    Meter,
    Queued,
    Scratch,
    dense_view,
    grad_stats,
    reference_stats,
)
from gradsight.autograd.gradstats.numpy_view import dense_stats
from gradsight.autograd.gradstats.reductions import nonfinite_stats
from gradsight.autograd.gradstats.torch_path import torch_stats

_NAN, _INF = math.nan, math.inf


def _randn(*shape: int, dtype: torch.dtype = torch.float32, seed: int = 0) -> Tensor:
    """Seeded N(0, 1) values of both signs, about half of them (|x| < 0.6745) exact zeros."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=gen, dtype=torch.float64)
    return torch.where(x.abs() < 0.6745, 0.0, x).to(dtype)


def _with(g: Tensor, *values: float) -> Tensor:
    """``g`` with its first elements (in memory order) set to ``values``."""
    g = g.clone()
    g.view(-1)[: len(values)] = torch.tensor(values, dtype=g.dtype)
    return g


def _sparse_coo() -> Tensor:
    indices = torch.tensor([[0, 2, 2, 3, 1], [1, 0, 0, 2, 1]])  # (2, 0) twice: values add up
    values = torch.tensor([3.0, -1.0, -1.5, 0.0, -0.0])  # two stored zeros
    return torch.sparse_coo_tensor(indices, values, (4, 3), check_invariants=True)


def _complex(nonfinite: bool) -> Tensor:
    gen = torch.Generator().manual_seed(3)
    z = torch.randn(40, 30, generator=gen, dtype=torch.complex64)
    z[::7] = 0  # whole rows of exact zeros
    z[1, 2] = complex(-0.0, 0.0)
    if nonfinite:
        z[2, :3] = torch.tensor([complex(_INF, 1), complex(1, _NAN), complex(-_INF, -_INF)])
    return z


_SMALL, _LARGE = (37, 53), (320, 300)  # 1961 and 96000 elements: either side of 65536

_CASES: dict[str, Tensor] = {
    "f32-small": _randn(*_SMALL),
    "f32-large": _randn(*_LARGE, seed=1),
    "f64-small": _randn(*_SMALL, dtype=torch.float64, seed=2),
    "f64-large": _randn(*_LARGE, dtype=torch.float64, seed=3),
    "f16-small": _randn(*_SMALL, dtype=torch.float16, seed=4),
    "bf16-large": _randn(*_LARGE, dtype=torch.bfloat16, seed=5),
    "sparse-coo": _sparse_coo(),
    "complex64": _complex(nonfinite=False),
    "transposed-large": _randn(400, 250, seed=6).t(),  # a NumPy view in memory order
    "strided-slice": _randn(100, 90, seed=7)[:, ::3],  # no NumPy view: torch ops
    "expanded": _randn(50, 1, seed=8).expand(50, 40),  # stride 0
    "nan-f32-small": _with(_randn(*_SMALL), 1.5, _NAN, -2.0),
    "posinf-f32-large": _with(_randn(*_LARGE), _INF, 0.0, -7.0),
    "neginf-f64-small": _with(_randn(*_SMALL, dtype=torch.float64), -_INF, -3.0),
    "nan-inf-f16": _with(_randn(*_SMALL, dtype=torch.float16), _NAN, _INF, -_INF, -5.0),
    "nan-inf-bf16-large": _with(_randn(*_LARGE, dtype=torch.bfloat16), -_INF, _NAN, 9.0),
    "nan-inf-strided": _with(_randn(90, 40), _NAN, -_INF, 0.5)[:, ::2],
    "complex-nonfinite": _complex(nonfinite=True),
    "negative-zeros": torch.tensor([-0.0, 0.0, -0.0, -2.5, 1.0]),
    "only-negative-zeros": torch.full((3, 3), -0.0),
    "only-nonfinite": torch.tensor([_NAN, _INF, -_INF]),  # no finite entry: max |g| is 0.0
    "empty": torch.zeros(0, 4),
}


def _numpy_view(g: Tensor) -> GradStats | None:
    flat = dense_view(g)
    assert flat is not None  # the case does take this path
    return dense_stats(g, flat)


def _deferred(full: bool) -> Callable[[Tensor], GradStats | None]:
    def measure(g: Tensor) -> GradStats | None:
        meter = Meter(full, defer=True)
        queued = meter.measure(g)
        assert isinstance(queued, Queued) or g.layout != torch.strided or g.numel() == 0
        return meter.resolve(queued)

    return measure


def _internal(g: Tensor) -> bool:
    """Whether the internal paths take ``g``: grad_stats sends them real, dense, non-empty ones."""
    return g.layout == torch.strided and not g.is_complex() and g.numel() > 0


def _any(g: Tensor) -> bool:
    return True


_Measure = Callable[[Tensor], GradStats | None]

# name -> (measure, whether it takes the case); a fast path returns None to hand a sum of
# squares holding NaN/Inf over to the exact path
_PATHS: dict[str, tuple[_Measure, Callable[[Tensor], bool]]] = {
    "numpy-view": (_numpy_view, lambda g: dense_view(g) is not None and g.numel() > 0),
    "torch-scratch": (lambda g: torch_stats(g, True, Scratch()), _internal),
    "exact-nonfinite": (nonfinite_stats, _internal),
    "sparse": (lambda g: grad_stats(g if g.is_sparse else g.to_sparse()), _any),
    "meter-deferred": (_deferred(full=True), _any),
    "grad_stats": (grad_stats, _any),
}

_NORM_ONLY: dict[str, tuple[_Measure, Callable[[Tensor], bool]]] = {
    "torch-norm": (lambda g: torch_stats(g, False, None), _internal),
    "grad_stats-norm": (lambda g: grad_stats(g, full=False), _any),
    "meter-deferred-norm": (_deferred(full=False), _any),
}


def _applicable(
    paths: dict[str, tuple[_Measure, Callable[[Tensor], bool]]],
) -> list[tuple[str, str]]:
    """The (path, case) pairs where the path takes the case: the parameters of a test."""
    return [(p, c) for p, (_, takes) in paths.items() for c, g in _CASES.items() if takes(g)]


def _norm_rtol(g: Tensor) -> float:
    """float32 sums agree to ~1e-6; float64 ones (BLAS dot against vector_norm) to ~1e-15."""
    return 1e-12 if g.dtype in (torch.float64, torch.complex128) else 1e-5


def _assert_norm(got: GradStats, want: GradStats, g: Tensor) -> None:
    assert (got.shape, got.nonfinite) == (want.shape, want.nonfinite)
    if math.isnan(want.norm):
        assert math.isnan(got.norm), got
    else:
        assert math.isclose(got.norm, want.norm, rel_tol=_norm_rtol(g)), (got.norm, want.norm)


def _assert_extremes(got: GradStats, want: GradStats, g: Tensor) -> None:
    assert got.zeros == want.zeros
    # the fast paths round complex64 moduli to float32 (within an ulp); real extremes are exact
    assert got.max_abs is not None and want.max_abs is not None
    assert math.isclose(got.max_abs, want.max_abs, rel_tol=2**-22 if g.is_complex() else 0.0)


@pytest.mark.parametrize(("path", "case"), _applicable(_PATHS), ids=str)
def test_fast_path_reports_the_reference(path: str, case: str) -> None:
    g = _CASES[case]
    measure, _ = _PATHS[path]
    got = measure(g)
    want = reference_stats(g)
    if got is None:  # handed over: only a sum of squares holding NaN/Inf may be
        assert want.nonfinite > 0
        got = nonfinite_stats(g)
    _assert_norm(got, want, g)
    _assert_extremes(got, want, g)


@pytest.mark.parametrize(("path", "case"), _applicable(_NORM_ONLY), ids=str)
def test_norm_only_path_reports_the_reference(path: str, case: str) -> None:
    g = _CASES[case]
    got, full = _NORM_ONLY[path][0](g), reference_stats(g)
    if got is None:  # handed over: only a sum of squares holding NaN/Inf may be
        assert full.nonfinite > 0
        return
    _assert_norm(got, reference_stats(g, full=False), g)
    if (got.max_abs, got.zeros) != (None, None):  # measured anyway (the exact NaN/Inf path)
        _assert_extremes(got, full, g)


def test_reference_counts_by_hand() -> None:
    sparse = reference_stats(_sparse_coo())
    assert sparse == GradStats((4, 3), math.sqrt(9 + 2.5**2), 0, 3.0, 10)
    z = reference_stats(torch.tensor([3 + 4j, 0j, complex(-0.0, 0.0), complex(1, _INF)]))
    assert (z.nonfinite, z.max_abs, z.zeros) == (1, 5.0, 2) and math.isnan(z.norm)
    assert reference_stats(torch.tensor([_NAN, _INF])).max_abs == 0.0
    norm_only = reference_stats(torch.tensor([0.0, -6.0, 8.0], dtype=torch.float16), full=False)
    assert norm_only == GradStats((3,), 10.0, 0, None, None)


def test_overflowing_squares_are_exact_except_deferred() -> None:
    g = torch.full((2,), 3e38)  # 3e38**2 overflows float32; the Meter documents an Inf norm
    want = reference_stats(g)
    flat = dense_view(g)
    assert flat is not None and dense_stats(g, flat) is None  # handed over to the exact path
    for got in (grad_stats(g), nonfinite_stats(g), grad_stats(g.to_sparse())):
        assert got is not None and got.nonfinite == 0
        assert math.isclose(got.norm, want.norm, rel_tol=1e-12)
        assert (got.max_abs, got.zeros) == (want.max_abs, want.zeros)
    deferred = _deferred(full=True)(g)
    assert deferred is not None and deferred.norm == math.inf
    assert (deferred.nonfinite, deferred.max_abs) == (0, want.max_abs)


@pytest.mark.parametrize("defer", [False, True], ids=["at-once", "deferred"])
def test_complex_modulus_that_overflows_is_still_finite(defer: bool) -> None:
    g = torch.tensor([3e38 + 3e38j, 1 + 0j], dtype=torch.complex64)  # both entries finite
    meter = Meter(full=True, defer=defer)
    got, want = meter.resolve(meter.measure(g)), reference_stats(g)
    assert want.nonfinite == 0 and got is not None
    assert got.nonfinite == 0 and got.zeros == want.zeros == 0
    assert math.isclose(got.norm, want.norm, rel_tol=1e-6)  # 4.2e38: beyond float32 itself
    assert got.max_abs is not None and math.isclose(got.max_abs, want.max_abs, rel_tol=1e-6)


@pytest.mark.filterwarnings("ignore:ComplexHalf support is experimental")
def test_complex_half_moduli_are_taken_wider() -> None:
    g = torch.tensor([6e4 + 6e4j, 0j], dtype=torch.complex32)  # |z| = 84853 > float16's max
    got, want = grad_stats(g), reference_stats(g)
    assert got is not None and (got.nonfinite, got.zeros) == (want.nonfinite, want.zeros) == (0, 1)
    assert got.max_abs is not None and math.isclose(got.max_abs, want.max_abs, rel_tol=1e-3)
