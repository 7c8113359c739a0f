"""A fully connected layer, ``out = x @ w.T + b`` with ``w`` shaped (out, in) as ``nn.Linear``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gradsight.errors import ConfigError

__all__ = ["LinearCache", "linear_backward", "linear_forward"]


@dataclass(frozen=True, eq=False)
class LinearCache:
    """The layer's input and weight."""

    x: np.ndarray  # (N, IN)
    w: np.ndarray  # (OUT, IN)


def linear_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, LinearCache]:
    """Return ``(x @ w.T + b, cache)``, of shape (N, OUT).

    Args:
        x: input (N, IN).
        w: weight (OUT, IN).
        b: bias (OUT,).

    Raises:
        ConfigError: shapes that do not fit together.
    """
    if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[1] or b.shape != (w.shape[0],):
        raise ConfigError(
            f"linear: x {list(x.shape)}, w {list(w.shape)} and b {list(b.shape)} do not fit; "
            "expected x (N, IN), w (OUT, IN) and b (OUT,); flatten x first"
        )
    return x @ w.T + b, LinearCache(x, w)


def linear_backward(
    dout: np.ndarray, cache: LinearCache
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(dx, dw, db) = (dout @ w, dout.T @ x, dout summed over N)``.

    Args:
        dout: gradient w.r.t. the output (N, OUT).
        cache: the forward pass's cache.
    """
    dx = dout @ cache.w  # (N, IN)
    dw = dout.T @ cache.x  # (OUT, IN)
    db = dout.sum(axis=0)  # (OUT,)
    return dx, dw, db
