"""Seed, capture and restore every global random generator: Python, NumPy, torch CPU and
CUDA. Used by the training loop, checkpoints and the walk-through alike."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

__all__ = ["capture_rng", "restore_rng", "seed_everything"]


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's (CPU and every CUDA device) generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def capture_rng() -> dict[str, Any]:
    """Return the state of every global generator, as plain values and tensors.

    NumPy's key array becomes a list of ints, so the result loads with ``weights_only=True``.
    """
    kind, key, pos, has_gauss, gauss = np.random.get_state(legacy=True)
    return {
        "python": random.getstate(),
        "numpy": (str(kind), [int(k) for k in key], int(pos), int(has_gauss), float(gauss)),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng(states: dict[str, Any]) -> None:
    """Set every global generator to ``states`` from :func:`capture_rng`.

    CUDA states are restored only when this machine has as many CUDA devices as were saved.
    """
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, key, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, np.array(key, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    cuda = states.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
