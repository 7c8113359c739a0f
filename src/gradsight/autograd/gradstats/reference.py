"""The plain-torch definition of :class:`GradStats`, which the fast paths are tested against.

No speed branches: every gradient is made dense and measured in float64 (complex128 for
complex gradients) with the obvious torch call for each number.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from gradsight.autograd.gradstats.stats import GradStats

__all__ = ["reference_stats"]


def reference_stats(g: Tensor, full: bool = True) -> GradStats:
    """Measure ``g`` the slow, obvious way: what every fast path must report.

    Args:
        g: a gradient of any dtype, device and layout. A sparse one is made dense (its
            duplicate indices add up, the entries it does not store are zeros); a complex
            one is measured by modulus.
        full: also measure ``max_abs`` and ``zeros``; without it they are None.

    Returns:
        The L2 norm (NaN when ``g`` holds NaN/Inf), the count of NaN/Inf entries, the
        largest modulus among the finite entries (0.0 when there are none) and the count
        of exact zeros (-0.0 is one).

    >>> reference_stats(torch.tensor([3.0, -4.0, -0.0, 0.0]))
    GradStats(shape=(4,), norm=5.0, nonfinite=0, max_abs=4.0, zeros=2)
    >>> reference_stats(torch.tensor([3.0, float("nan"), -float("inf")]))
    GradStats(shape=(3,), norm=nan, nonfinite=2, max_abs=3.0, zeros=0)
    """
    g = g.detach()
    if g.layout != torch.strided:
        g = g.to_dense()
    g = g.to(torch.complex128 if g.is_complex() else torch.float64)
    finite = torch.isfinite(g)
    nonfinite = int((~finite).sum())
    shape = tuple(g.shape)
    norm = math.nan if nonfinite else float(torch.linalg.vector_norm(g[finite]))
    if not full:
        return GradStats(shape, norm, nonfinite, None, None)
    moduli = g[finite].abs()
    max_abs = float(moduli.max()) if moduli.numel() else 0.0
    return GradStats(shape, norm, nonfinite, max_abs, int((g == 0).sum()))
