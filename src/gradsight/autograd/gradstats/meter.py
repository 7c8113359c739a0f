"""Measure the gradients of one backward pass, at once or queued on the device."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from gradsight.autograd.gradstats.dispatch import grad_stats, moduli
from gradsight.autograd.gradstats.reductions import read_rows, reductions, stats_of_row
from gradsight.autograd.gradstats.stats import GradStats
from gradsight.autograd.gradstats.torch_path import Scratch

__all__ = ["Meter", "Queued", "Stat", "reshaped"]


@dataclass(frozen=True)
class Queued:
    """Statistics still on the device: row ``row`` of a :class:`Meter`'s queue, for ``shape``."""

    row: int
    shape: tuple[int, ...]


Stat = GradStats | Queued | None


class Meter:
    """Measures the gradients of one traced backward, at once or queued on the device.

    On the CPU a gradient is measured at once (:func:`grad_stats`: reading a number costs
    no sync there). On an accelerator a sync per gradient would stall the backward pass,
    so the reductions are queued on the device as 0-d tensors and read when the trace is
    read, one transfer per dtype. Each queued gradient costs few kernel launches (see
    :func:`~gradsight.autograd.gradstats.reductions.reductions`). Both ways give the same
    numbers, except that a deferred gradient whose squares overflow float32 without
    holding NaN/Inf reports an infinite norm, and that with the norm alone
    (``full=False``) a deferred gradient holding NaN/Inf reports no max |g| and zeros,
    which the CPU's exact path adds.
    """

    def __init__(self, full: bool, defer: bool) -> None:
        self.full, self.defer = full, defer
        self.scratch = Scratch() if full else None
        self._queue: list[tuple[Tensor, ...]] = []
        self._read: list[list[float]] = []

    def measure(self, grad: Tensor | None) -> Stat:
        """The statistics of ``grad``, or a :class:`Queued` placeholder when deferring."""
        if grad is None:
            return None
        if not self.defer or grad.layout != torch.strided:  # sparse: rare, measured at once
            return grad_stats(grad, self.full, self.scratch)
        g = grad.detach() if grad.requires_grad else grad
        if g.is_complex():  # as in grad_stats
            g = moduli(g)
        if g.numel() == 0:
            return GradStats(tuple(g.shape), 0.0, 0)
        self._queue.append(reductions(g, self.full))
        return Queued(len(self._queue) - 1, tuple(g.shape))

    def resolve(self, stat: Stat) -> GradStats | None:
        """The numbers behind ``stat``; the first queued one read reads the whole queue."""
        if not isinstance(stat, Queued):
            return stat
        if len(self._read) < len(self._queue):
            self._read += read_rows(self._queue[len(self._read) :])
        return stats_of_row(stat.shape, self._read[stat.row])


def reshaped(stat: Stat, shape: tuple[int, ...]) -> Stat:
    """The same statistics for a tensor holding the same elements in another shape."""
    if isinstance(stat, Queued):
        return Queued(stat.row, shape)
    if stat is None:
        return None
    return GradStats(shape, stat.norm, stat.nonfinite, stat.max_abs, stat.zeros)
