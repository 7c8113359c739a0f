"""max_abs_diff / max_rel_diff: the figures behind every "matches autograd"."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gradsight.errors import ConfigError
from gradsight.numpy_ref import max_abs_diff, max_rel_diff


def test_relative_to_the_largest_expected_magnitude() -> None:
    expected = np.array([100.0, 1e-12, -4.0])
    actual = np.array([100.0, 2e-12, -4.5])
    assert max_abs_diff(actual, expected) == 0.5
    assert max_rel_diff(actual, expected) == 0.005  # 0.5 / 100, not 1e-12 / 1e-12


def test_zero_expected_and_empty() -> None:
    assert max_rel_diff(np.zeros(3), np.zeros(3)) == 0.0
    assert max_rel_diff(np.array([0.0, 1e-30]), np.zeros(2)) == math.inf
    assert max_abs_diff(np.zeros((0, 3)), np.zeros((0, 3))) == 0.0


def test_nan_is_never_a_match() -> None:
    assert math.isnan(max_rel_diff(np.array([np.nan]), np.array([1.0])))
    assert not max_rel_diff(np.array([np.nan]), np.array([1.0])) <= 1e-10


def test_shape_mismatch_raises() -> None:
    with pytest.raises(ConfigError, match=r"shapes \[2\] and \[3\]"):
        max_abs_diff(np.zeros(2), np.zeros(3))
