"""Flatten (N, ...) to (N, D), as ``torch.flatten(x, 1)``; its backward only reshapes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["FlattenCache", "flatten_backward", "flatten_forward"]


@dataclass(frozen=True, eq=False)
class FlattenCache:
    """The shape to restore."""

    x_shape: tuple[int, ...]


def flatten_forward(x: np.ndarray) -> tuple[np.ndarray, FlattenCache]:
    """Return ``(x.reshape(N, -1), cache)``, keeping C, H, W in row-major order as PyTorch."""
    return x.reshape(x.shape[0], -1), FlattenCache(tuple(x.shape))


def flatten_backward(dout: np.ndarray, cache: FlattenCache) -> np.ndarray:
    """Reshape ``dout`` (N, D) back to the input's shape: no value changes."""
    return dout.reshape(cache.x_shape)
