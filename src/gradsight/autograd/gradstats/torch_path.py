"""Statistics with torch ops, one reused scratch buffer and one device sync.

The path for what a NumPy view cannot read (accelerators, half types, expanded or
strided tensors) and for the norm alone, where one torch call is as quick. A comparison
needs a full-size temporary; on the CPU a fresh multi-megabyte one pays page faults when
first touched, so a tracer lends one :class:`Scratch` for the whole pass.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from gradsight.autograd.gradstats.stats import GradStats

__all__ = ["CPU_FLOATS", "Scratch", "l2_norm", "squared_norm", "torch_stats"]

CPU_FLOATS = (torch.float32, torch.float64)  # what NumPy views and BLAS dot read on the CPU


class Scratch:
    """Reusable flat buffers for the full-size temporaries that torch-side statistics need.

    Used where :func:`~gradsight.autograd.gradstats.numpy_view.dense_view` does not apply
    (accelerators, half types, expanded tensors). On the CPU a fresh multi-megabyte tensor
    pays page faults when first touched, so a tracer keeps one ``Scratch`` for the whole
    pass. The buffer grows to the largest tensor seen and is freed with the ``Scratch``.
    """

    def __init__(self) -> None:
        self._buffers: dict[tuple[torch.dtype, torch.device], Tensor] = {}

    def buffer(self, shape: torch.Size, dtype: torch.dtype, device: torch.device) -> Tensor:
        """An uninitialised tensor of ``shape``, backed by the reused buffer."""
        numel = math.prod(shape)
        key = (dtype, device)
        flat = self._buffers.get(key)
        if flat is None or flat.numel() < numel:
            flat = self._buffers[key] = torch.empty(numel, dtype=dtype, device=device)
        return flat[:numel].view(shape)

    def count(self, op: Any, t: Tensor, *args: Any) -> Tensor:
        """Exact count of the positions where ``op(t, *args)`` holds, e.g. ``torch.eq, g, 0``.

        The comparison writes 0/1 into a float buffer whose sum is exact: float32 below
        2**24 elements, float64 above. Returns a 0-d tensor, so the caller chooses when to sync.
        """
        dtype = torch.float32 if t.numel() < 2**24 else torch.float64
        out = self.buffer(t.shape, dtype, t.device)
        op(t, *args, out=out)
        return out.sum()


def _accumulation(g: Tensor) -> torch.dtype | None:
    """The dtype a reduction of ``g`` accumulates in: float32 for half types."""
    return torch.float32 if g.dtype in (torch.float16, torch.bfloat16) else None


def squared_norm(g: Tensor) -> Tensor:
    """The sum of squares of ``g`` as a 0-d tensor (float32 accumulation for half types).

    On the CPU a contiguous float32/float64 tensor goes through BLAS ``dot(g, g)``: for 1M
    float32 values it took 46 us against 110 us for ``vector_norm``, and came closer to the
    float64 result (1.3e-6 against 1e-5 relative error). Squares that overflow give Inf,
    as does NaN give NaN.
    """
    if _blas_dot(g):
        flat = g.view(-1)
        return torch.dot(flat, flat)
    return torch.linalg.vector_norm(g, dtype=_accumulation(g)).square()


def l2_norm(g: Tensor) -> Tensor:
    """The L2 norm of ``g`` as a 0-d tensor, without leaving the device."""
    if _blas_dot(g):
        return squared_norm(g).sqrt()
    return torch.linalg.vector_norm(g, dtype=_accumulation(g))


def _blas_dot(g: Tensor) -> bool:
    return g.is_cpu and g.dtype in CPU_FLOATS and g.is_contiguous()


def torch_stats(g: Tensor, full: bool, scratch: Scratch | None) -> GradStats | None:
    """Statistics with torch ops and one sync; None if the sum of squares is not finite."""
    if not full:
        norm = math.sqrt(float(squared_norm(g)))
        return GradStats(tuple(g.shape), norm, 0, None, None) if math.isfinite(norm) else None
    low, high = torch.aminmax(g)
    zeros = (scratch or Scratch()).count(torch.eq, g, 0)
    square, low_, high_, zeros_ = torch.stack([squared_norm(g), low, high, zeros]).tolist()
    if not math.isfinite(square):
        return None
    return GradStats(tuple(g.shape), math.sqrt(square), 0, max(-low_, high_), round(zeros_))
