"""Statistics as 0-d tensors queued on the device, read back later in one transfer per dtype.

The deferred :class:`~gradsight.autograd.gradstats.meter.Meter` queues these reductions;
the exact path for a gradient whose sum of squares is NaN or Inf reads them at once.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from gradsight.autograd.gradstats.stats import GradStats
from gradsight.autograd.gradstats.torch_path import l2_norm

__all__ = ["nonfinite_stats", "read_rows", "reductions", "stats_of_row"]


def reductions(g: Tensor, full: bool) -> tuple[Tensor, ...]:
    """(NaN/Inf count, norm) and in full (low, high, nonzero count) of g with NaN/Inf as 0.

    Seven torch calls in full, four for the norm alone, none of them a sync. Not
    ``torch.isfinite``: it is four kernels (``g == g``, ``abs``, ``!= inf``, ``*``).
    ``nan_to_num`` zeroes NaN/Inf in one kernel, and exactly the entries it changed
    were not finite.
    """
    clean = torch.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0)
    nonfinite = (clean != g).sum()  # NaN != 0 and Inf != 0; a finite entry is unchanged
    if not full:
        return (nonfinite, l2_norm(g))
    low, high = torch.aminmax(clean)
    return (nonfinite, l2_norm(clean), low, high, torch.count_nonzero(clean))


def stats_of_row(shape: tuple[int, ...], row: list[float]) -> GradStats:
    """The :class:`GradStats` behind the values of one row of :func:`reductions`."""
    nonfinite, norm, *rest = row
    count = round(nonfinite)
    max_abs = zeros = None
    if rest:  # the zeros of clean are g's zeros and its NaN/Inf
        low, high, nonzero = rest
        max_abs, zeros = max(-low, high), math.prod(shape) - round(nonzero) - count
    return GradStats(shape, math.nan if count else norm, count, max_abs, zeros)


def read_rows(rows: list[tuple[Tensor, ...]]) -> list[list[float]]:
    """The values of rows of 0-d tensors, read with one stack and transfer per dtype."""
    flat = [t for row in rows for t in row]
    by_dtype: dict[torch.dtype, list[int]] = {}
    for i, t in enumerate(flat):
        by_dtype.setdefault(t.dtype, []).append(i)
    values: list[float] = [0.0] * len(flat)
    for positions in by_dtype.values():
        read = torch.stack([flat[i] for i in positions]).tolist()
        for i, value in zip(positions, read, strict=True):
            values[i] = value
    out, start = [], 0
    for row in rows:
        out.append(values[start : start + len(row)])
        start += len(row)
    return out


def nonfinite_stats(g: Tensor) -> GradStats:
    """Exact statistics of a gradient whose sum of squares is NaN or Inf (the rare path):
    the deferred path's reductions, read at once and taken in float64, where squares that
    overflowed g's dtype without any NaN/Inf give the exact norm."""
    return stats_of_row(tuple(g.shape), read_rows([reductions(g.double(), full=True)])[0])
