"""The measured size of one gradient tensor, as plain data."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["GradStats"]


@dataclass(frozen=True)
class GradStats:
    """Size of one gradient tensor."""

    shape: tuple[int, ...]
    norm: float  # L2 norm; NaN when the tensor holds NaN/Inf
    nonfinite: int  # count of NaN/Inf entries
    max_abs: float | None = 0.0  # largest |g| among finite entries; None if not measured
    zeros: int | None = 0  # count of exact zeros; None if not measured

    @property
    def numel(self) -> int:
        return math.prod(self.shape)
