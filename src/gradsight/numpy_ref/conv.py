"""2-D convolution (cross-correlation, as ``nn.Conv2d``) by im2col and matrix products."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gradsight.errors import ConfigError
from gradsight.numpy_ref._windows import check_window, gather_windows, scatter_windows

__all__ = ["Conv2dCache", "conv2d_backward", "conv2d_forward"]


@dataclass(frozen=True, eq=False)
class Conv2dCache:
    """What :func:`conv2d_backward` needs from the forward pass."""

    cols: np.ndarray  # (N, C*KH*KW, OH*OW): each output position's receptive field as a column
    w: np.ndarray  # (F, C, KH, KW)
    x_shape: tuple[int, int, int, int]  # (N, C, H, W), unpadded
    stride: int
    padding: int


def _check(x: np.ndarray, w: np.ndarray, b: np.ndarray, padding: int) -> None:
    if x.ndim != 4:
        raise ConfigError(
            f"conv2d: input must be 4-D (N, C, H, W), got shape {list(x.shape)}; "
            "add a batch axis with x[None] for one image"
        )
    if w.ndim != 4:
        raise ConfigError(f"conv2d: w must be 4-D (F, C, KH, KW), got shape {list(w.shape)}")
    if x.shape[1] != w.shape[1]:
        raise ConfigError(
            f"conv2d: x has {x.shape[1]} channels but w expects {w.shape[1]} "
            f"(w is {list(w.shape)}); pass x as (N, C, H, W) with C = w.shape[1]"
        )
    if b.shape != (w.shape[0],):
        raise ConfigError(f"conv2d: b must have shape [{w.shape[0]}], got {list(b.shape)}")
    if not isinstance(padding, (int, np.integer)) or padding < 0:
        raise ConfigError(f"conv2d: padding must be an integer >= 0, got {padding!r}")


def conv2d_forward(
    x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int = 1, padding: int = 0
) -> tuple[np.ndarray, Conv2dCache]:
    """Convolve ``x`` with ``w`` and add ``b``, as ``torch.nn.functional.conv2d``.

    ``out[n, f, i, j] = b[f] + sum_{c, p, q} w[f, c, p, q] * x_pad[n, c, i*s + p, j*s + q]``.

    Args:
        x: input (N, C, H, W).
        w: kernels (F, C, KH, KW).
        b: bias (F,).
        stride: step between output positions, along H and W.
        padding: zeros added on every side of H and W.

    Returns:
        ``(out, cache)`` with ``out`` of shape (N, F, OH, OW),
        ``OH = (H + 2 * padding - KH) // stride + 1`` (likewise OW).

    Raises:
        ConfigError: shapes that do not fit together, or a bad stride or padding.
    """
    _check(x, w, b, padding)
    p = padding
    x_pad = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p))) if p else x  # (N, C, H+2p, W+2p)
    f, c, kh, kw = w.shape
    check_window("conv2d", x_pad.shape, (kh, kw), stride)
    win = gather_windows(x_pad, kh, kw, stride)  # (N, C, KH, KW, OH, OW)
    n, oh, ow = win.shape[0], win.shape[4], win.shape[5]
    cols = win.reshape(n, c * kh * kw, oh * ow)  # (N, C*KH*KW, OH*OW), no copy
    out = w.reshape(f, -1) @ cols + b[:, None]  # (N, F, OH*OW): one product per image
    out = out.reshape(n, f, oh, ow)  # (N, F, OH, OW)
    cache = Conv2dCache(cols, w, (x.shape[0], x.shape[1], x.shape[2], x.shape[3]), stride, p)
    return out, cache


def conv2d_backward(
    dout: np.ndarray, cache: Conv2dCache
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(dx, dw, db)``, the gradients of the loss w.r.t. the conv's x, w and b.

    ``dw = sum_n dout_n @ cols_n^T`` (every weight meets every receptive field it touched),
    ``db = sum of dout over N, OH, OW``, and ``dx`` scatters ``w_mat^T @ dout_n`` back onto
    the receptive fields, summing where they overlap, then drops the padding.

    Args:
        dout: gradient of the loss w.r.t. the conv's output (N, F, OH, OW).
        cache: the forward pass's cache.
    """
    n, c, h, w_in = cache.x_shape
    f, _, kh, kw = cache.w.shape
    oh, ow = dout.shape[2:]
    dout_mat = dout.reshape(n, f, oh * ow)  # (N, F, OH*OW)
    dw = (dout_mat @ cache.cols.transpose(0, 2, 1)).sum(axis=0)  # (F, C*KH*KW)
    db = dout.sum(axis=(0, 2, 3))  # (F,)
    dcols = cache.w.reshape(f, -1).T @ dout_mat  # (N, C*KH*KW, OH*OW)
    dwin = dcols.reshape(n, c, kh, kw, oh, ow)
    p = cache.padding
    dx_pad = scatter_windows(dwin, (h + 2 * p, w_in + 2 * p), cache.stride)  # (N,C,H+2p,W+2p)
    dx = dx_pad[:, :, p : p + h, p : p + w_in]  # (N, C, H, W)
    return dx, dw.reshape(cache.w.shape), db
