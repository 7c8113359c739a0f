"""One NumPy-vs-autograd comparison, measured in the run that reports it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from gradsight.numpy_ref import max_abs_diff, max_rel_diff

__all__ = ["FLOAT64_TOLERANCE", "Comparison", "compare"]

#: Largest relative difference (to the largest magnitude) that counts as a match in float64.
FLOAT64_TOLERANCE = 1e-10


@dataclass(frozen=True)
class Comparison:
    """How far a value computed by hand is from the one PyTorch computed."""

    label: str  # what was compared, e.g. "backward fc.weight"
    max_abs_diff: float
    max_rel_diff: float  # max |ours - theirs| / max |theirs|
    tolerance: float  # largest max_rel_diff that passes; 0.0 demands equality

    @property
    def passed(self) -> bool:
        """Whether the relative difference is within tolerance (NaN never passes)."""
        return self.max_rel_diff <= self.tolerance


def compare(
    label: str, ours: ArrayLike, theirs: ArrayLike, tolerance: float = FLOAT64_TOLERANCE
) -> Comparison:
    """Measure ``ours`` against ``theirs`` (PyTorch's value) and keep the figures.

    Args:
        label: what is compared, for reports and failure messages.
        ours: the value computed by hand (NumPy or a formula).
        theirs: PyTorch's value, as a NumPy array or number.
        tolerance: the largest relative difference that passes.
    """
    a, b = np.asarray(ours), np.asarray(theirs)
    return Comparison(label, max_abs_diff(a, b), max_rel_diff(a, b), tolerance)
