"""How far apart two arrays are: the figures every "matches autograd" claim rests on."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from gradsight.errors import ConfigError

__all__ = ["max_abs_diff", "max_rel_diff"]


def _pair(actual: ArrayLike, expected: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(actual, dtype=np.float64)
    b = np.asarray(expected, dtype=np.float64)
    if a.shape != b.shape:
        raise ConfigError(f"cannot compare arrays of shapes {list(a.shape)} and {list(b.shape)}")
    return a, b


def max_abs_diff(actual: ArrayLike, expected: ArrayLike) -> float:
    """Return ``max |actual - expected|`` (0.0 for empty arrays; NaN anywhere gives NaN)."""
    a, b = _pair(actual, expected)
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def max_rel_diff(actual: ArrayLike, expected: ArrayLike) -> float:
    """Return ``max |actual - expected| / max |expected|``, the error relative to the scale.

    Relative to the largest expected magnitude rather than element by element, so an entry
    that is ~0 by cancellation does not turn rounding noise into a huge ratio. When
    ``expected`` is all zeros the result is 0.0 if ``actual`` is too, else ``inf``.
    """
    a, b = _pair(actual, expected)
    diff = max_abs_diff(a, b)
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    if scale == 0.0:
        return 0.0 if diff == 0.0 else float("inf")
    return diff / scale
