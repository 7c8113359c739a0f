"""Sliding windows over (N, C, H, W) arrays and their adjoint: the shared core of conv and pool.

Both loop over the KH * KW kernel offsets, not over positions: each offset reads (or adds
to) one strided slice of the input for every output position at once.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from gradsight.errors import ConfigError

__all__ = ["check_window", "gather_windows", "offsets", "output_size", "scatter_windows"]


def output_size(size: int, kernel: int, stride: int) -> int:
    """Return how many windows of ``kernel`` fit in ``size`` with step ``stride`` (floor mode)."""
    return (size - kernel) // stride + 1


def check_window(op: str, x_shape: tuple[int, ...], kernel: tuple[int, int], stride: int) -> None:
    """Raise ConfigError unless a ``kernel`` window with ``stride`` fits the (padded) input.

    Args:
        op: the operation's name, for the message.
        x_shape: the (padded) input shape (N, C, H, W).
        kernel: window height and width.
        stride: the step between windows.
    """
    if not isinstance(stride, (int, np.integer)) or stride < 1:
        raise ConfigError(f"{op}: stride must be a positive integer, got {stride!r}; use e.g. 1")
    if len(x_shape) != 4:
        raise ConfigError(
            f"{op}: input must be 4-D (N, C, H, W), got shape {list(x_shape)}; "
            "add a batch axis with x[None] for one image"
        )
    if not all(isinstance(k, (int, np.integer)) and k >= 1 for k in kernel):
        raise ConfigError(f"{op}: kernel must be positive integers, got {kernel!r}; use e.g. 2")
    h, w = x_shape[2:]
    if kernel[0] > h or kernel[1] > w:
        raise ConfigError(
            f"{op}: a {kernel[0]}x{kernel[1]} window does not fit a {h}x{w} (padded) input; "
            "use a smaller kernel or more padding"
        )


def offsets(
    kh: int, kw: int, oh: int, ow: int, stride: int
) -> Iterator[tuple[int, int, tuple[slice, slice]]]:
    """Yield ``(i, j, (rows, cols))``: the input slice kernel offset (i, j) reads, row-major.

    ``x[:, :, rows, cols]`` is (N, C, OH, OW): for every output position, the input element
    under offset (i, j) of its window.
    """
    for i in range(kh):
        for j in range(kw):
            rows = slice(i, i + stride * (oh - 1) + 1, stride)
            cols = slice(j, j + stride * (ow - 1) + 1, stride)
            yield i, j, (rows, cols)


def gather_windows(x: np.ndarray, kh: int, kw: int, stride: int) -> np.ndarray:
    """Return every ``kh`` x ``kw`` window of ``x`` (N, C, H, W) as (N, C, KH, KW, OH, OW)."""
    n, c, h, w = x.shape
    oh, ow = output_size(h, kh, stride), output_size(w, kw, stride)
    win = np.empty((n, c, kh, kw, oh, ow), dtype=x.dtype)
    for i, j, (rows, cols) in offsets(kh, kw, oh, ow, stride):
        win[:, :, i, j] = x[:, :, rows, cols]  # (N, C, OH, OW)
    return win


def scatter_windows(dwin: np.ndarray, hw: tuple[int, int], stride: int) -> np.ndarray:
    """Sum per-window gradients back onto the input they came from: the adjoint of gather.

    Overlapping windows (stride < kernel) accumulate, as the chain rule requires.

    Args:
        dwin: gradient of every window element (N, C, KH, KW, OH, OW).
        hw: the input's height and width (H, W).
        stride: the stride :func:`gather_windows` used.

    Returns:
        The input gradient (N, C, H, W); positions no window covers get 0.
    """
    n, c, kh, kw, oh, ow = dwin.shape
    dx = np.zeros((n, c, *hw), dtype=dwin.dtype)
    for i, j, (rows, cols) in offsets(kh, kw, oh, ow, stride):
        dx[:, :, rows, cols] += dwin[:, :, i, j]
    return dx
