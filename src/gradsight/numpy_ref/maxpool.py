"""2-D max pooling, routing each window's gradient to the element PyTorch picks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gradsight.numpy_ref._windows import check_window, offsets, output_size

__all__ = ["MaxPool2dCache", "maxpool2d_backward", "maxpool2d_forward"]


@dataclass(frozen=True, eq=False)
class MaxPool2dCache:
    """What :func:`maxpool2d_backward` needs from the forward pass."""

    argmax: np.ndarray  # (N, C, OH, OW): row-major index in its window of the winning element
    x_shape: tuple[int, int, int, int]  # (N, C, H, W)
    kernel: int
    stride: int


def maxpool2d_forward(
    x: np.ndarray, kernel: int = 2, stride: int = 2
) -> tuple[np.ndarray, MaxPool2dCache]:
    """Take the max of every ``kernel`` x ``kernel`` window, as ``nn.MaxPool2d`` (no padding).

    The winner is chosen by PyTorch's CPU rule: scanning the window in row-major order, an
    element takes over if it is larger than the best so far or is NaN. So on ties the first
    maximum wins, in a window with NaN the last NaN, and the gradient goes to the same place.

    Args:
        x: input (N, C, H, W).
        kernel: window side.
        stride: step between windows.

    Returns:
        ``(out, cache)`` with ``out`` (N, C, OH, OW), ``OH = (H - kernel) // stride + 1``.

    Raises:
        ConfigError: a non-4-D input, a window larger than the input, or a bad stride.
    """
    check_window("maxpool2d", x.shape, (kernel, kernel), stride)
    oh, ow = output_size(x.shape[2], kernel, stride), output_size(x.shape[3], kernel, stride)
    best = np.empty((x.shape[0], x.shape[1], oh, ow), dtype=x.dtype)  # (N, C, OH, OW)
    argmax = np.zeros(best.shape, dtype=np.intp)
    for k, (_, _, (rows, cols)) in enumerate(offsets(kernel, kernel, oh, ow, stride)):
        value = x[:, :, rows, cols]  # (N, C, OH, OW): offset k of every window
        if k == 0:
            best[...] = value
            continue
        takes_over = (value > best) | np.isnan(value)
        np.copyto(best, value, where=takes_over)
        argmax[takes_over] = k
    shape = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    return best, MaxPool2dCache(argmax, shape, kernel, stride)


def maxpool2d_backward(dout: np.ndarray, cache: MaxPool2dCache) -> np.ndarray:
    """Route each output gradient to its window's max; every other input gets 0.

    Args:
        dout: gradient w.r.t. the pooled output (N, C, OH, OW).
        cache: the forward pass's cache.

    Returns:
        ``dx`` (N, C, H, W); with overlapping windows an element that wins several sums them.
    """
    k, (oh, ow) = cache.kernel, dout.shape[2:]
    finite = bool(np.isfinite(dout).all())  # else inf * 0 would leak NaN to the losers
    dx = np.zeros(cache.x_shape, dtype=dout.dtype)
    for index, (_, _, (rows, cols)) in enumerate(offsets(k, k, oh, ow, cache.stride)):
        won = cache.argmax == index  # (N, C, OH, OW)
        dx[:, :, rows, cols] += dout * won if finite else np.where(won, dout, 0)
    return dx
