"""Gradient clipping as the loop does it: between ``backward()`` and ``step()``, and never a
NaN/Inf gradient into the weights."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor

__all__ = ["clip_gradients", "clip_without_sync"]


def clip_gradients(
    parameters: Iterable[Tensor], max_norm: float, total: Tensor | None = None
) -> tuple[float, bool]:
    """Scale the gradients down so their total L2 norm is at most ``max_norm``.

    Args:
        parameters: the parameters whose ``.grad`` is clipped (those without one are left).
        max_norm: the largest total norm let through.
        total: their total norm when already computed (the monitor's), else it is computed.

    Returns:
        ``(total norm, go)``. ``go`` is False when the total is NaN/Inf: no scaling can take
        a NaN out of a gradient, so the gradients are left as they are and the update must
        be skipped. Reading the total is one host sync per call.

    >>> w = torch.zeros(4, requires_grad=True)
    >>> w.grad = torch.full((4,), 3.0)
    >>> clip_gradients([w], 1.0), round(float(w.grad.norm()), 4)
    ((6.0, True), 1.0)
    """
    found = _with_total(parameters, total)
    if found is None:
        return 0.0, True
    params, total = found
    value = float(total)
    if not math.isfinite(value):
        return value, False
    torch.nn.utils.clip_grads_with_norm_(params, max_norm, total)
    return value, True


def clip_without_sync(
    parameters: Iterable[Tensor], max_norm: float, total: Tensor | None = None
) -> Tensor | None:
    """Clip as :func:`clip_gradients` does, without reading anything on the host: for
    ``--nonfinite-check-every N`` on an accelerator, where no step may wait for the device.

    A NaN/Inf total is not caught here: it turns the gradients NaN (torch's own clipping
    does the same), and the monitor reports it when it reads the flag, N steps later.

    Returns:
        Whether the gradients were scaled down, as a bool tensor on their device (read it
        later, with other values, in one transfer); None without gradients.

    >>> w = torch.zeros(4, requires_grad=True)
    >>> w.grad = torch.full((4,), 3.0)
    >>> bool(clip_without_sync([w], 1.0)), round(float(w.grad.norm()), 4)
    (True, 1.0)
    """
    found = _with_total(parameters, total)
    if found is None:
        return None
    params, total = found
    torch.nn.utils.clip_grads_with_norm_(params, max_norm, total)
    return total > max_norm


def _with_total(
    parameters: Iterable[Tensor], total: Tensor | None
) -> tuple[list[Tensor], Tensor] | None:
    """The parameters holding a ``.grad`` and their total norm (``total`` when given, else
    computed on their device); None when none holds one."""
    params = [p for p in parameters if p.grad is not None]
    if not params:
        return None
    if total is None:
        total = torch.nn.utils.get_total_norm([p.grad for p in params])  # type: ignore[misc]
    return params, total
