"""Every global generator comes back to the captured state."""

from __future__ import annotations

import random

import numpy as np
import torch

from gradsight.rng import capture_rng, restore_rng


def _draw() -> tuple[float, float, list[float]]:
    return random.random(), float(np.random.rand()), torch.rand(3).tolist()


def test_restore_rng_replays_the_same_draws() -> None:
    states = capture_rng()
    first = _draw()
    assert _draw() != first
    restore_rng(states)
    assert _draw() == first
