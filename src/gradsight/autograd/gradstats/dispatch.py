"""Measure one gradient: pick the path that reads it quickest, hand NaN/Inf to the exact one."""

from __future__ import annotations

import torch
from torch import Tensor

from gradsight.autograd.gradstats.numpy_view import dense_stats, dense_view
from gradsight.autograd.gradstats.reductions import nonfinite_stats
from gradsight.autograd.gradstats.stats import GradStats
from gradsight.autograd.gradstats.torch_path import Scratch, torch_stats

__all__ = ["grad_stats", "moduli", "sparse_stats"]

#: Each complex type's moduli are taken in the next wider one: |3e38+3e38j| = 4.2e38 is a
#: finite complex64 entry whose modulus float32 cannot hold.
_WIDER = {torch.complex32: torch.complex64, torch.complex64: torch.complex128}


def moduli(g: Tensor) -> Tensor:
    """|z| of a complex ``g``, in the real type one step wider than its parts (float32 for
    complex32, float64 for complex64), so a finite entry keeps a finite modulus: its norm,
    zeros and NaN/Inf count are those of ``g``; max |g| is its largest modulus.

    >>> moduli(torch.tensor([3e38 + 3e38j, 3 + 4j], dtype=torch.complex64))
    tensor([4.2426e+38, 5.0000e+00], dtype=torch.float64)
    """
    wider = _WIDER.get(g.dtype)
    return (g if wider is None else g.to(wider)).abs()


def grad_stats(
    grad: Tensor | None, full: bool = True, scratch: Scratch | None = None
) -> GradStats | None:
    """Return the shape, L2 norm, max |g|, zeros and NaN/Inf count of ``grad`` (None for None).

    Reads the tensor only. The common, all-finite case costs a sum of squares, the extremes
    and a count of ``g == 0``; only a non-finite sum of squares triggers the slower exact
    count of NaN/Inf entries. ``full=False`` measures the norm only (one reduction;
    ``max_abs`` and ``zeros`` are None unless it is non-finite). With ``full``, CPU
    float32/float64 tensors are read through :func:`dense_view`; others with torch ops
    (``scratch`` lends the buffer for the zero count) and one device sync.
    """
    if grad is None:
        return None
    g = grad.detach() if grad.requires_grad else grad
    if g.layout != torch.strided:
        return sparse_stats(g, full, scratch)
    if g.is_complex():
        g = moduli(g)
    if g.numel() == 0:
        return GradStats(tuple(g.shape), 0.0, 0)
    flat = dense_view(g) if full else None  # the norm alone: one torch call is as quick
    stats = torch_stats(g, full, scratch) if flat is None else dense_stats(g, flat)
    return stats if stats is not None else nonfinite_stats(g)


def sparse_stats(g: Tensor, full: bool, scratch: Scratch | None) -> GradStats:
    """Statistics of a sparse gradient (``nn.Embedding(sparse=True)``) from its stored values.

    The entries it does not store are zeros: they add to ``zeros`` and nothing else.
    """
    if g.layout == torch.sparse_coo:
        g = g.coalesce()  # duplicate indices add up: the norm is that of the sums
    values = g.values()
    stats = grad_stats(values, full, scratch)
    assert stats is not None
    zeros = None if stats.zeros is None else stats.zeros + g.numel() - values.numel()
    return GradStats(tuple(g.shape), stats.norm, stats.nonfinite, stats.max_abs, zeros)
