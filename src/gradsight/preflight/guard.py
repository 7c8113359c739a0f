"""Run checks on a user's model without changing it: modes, buffers, gradients, RNG put back."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from gradsight.rng import capture_rng, restore_rng

__all__ = ["copy_training", "device_of", "preserved"]


def device_of(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (the CPU for an empty model)."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


@contextmanager
def preserved(model: nn.Module) -> Iterator[nn.Module]:
    """Let a block run forward and backward passes on ``model``, then undo their traces.

    On exit, also on an exception, every module's train/eval flag, every buffer (batch-norm
    running statistics), every parameter's ``.grad`` and every global random generator are
    as they were on entry. The block starts with no ``.grad`` set, in train mode. The block
    must not write the parameters themselves (no optimizer step on ``model``).
    """
    modes = [(m, m.training) for m in model.modules()]
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    grads = [(p, p.grad) for p in model.parameters()]
    rng = capture_rng()
    try:
        for p, _ in grads:
            p.grad = None
        model.train()
        yield model
    finally:
        for p, grad in grads:
            p.grad = grad
        with torch.no_grad():
            for buffer, saved in buffers:
                buffer.copy_(saved)
        for module, training in modes:
            module.training = training  # not .train(): that would recurse over children
        restore_rng(rng)


def copy_training(
    model: nn.Module, optimizer: torch.optim.Optimizer | None
) -> tuple[nn.Module, torch.optim.Optimizer | None]:
    """Return a deep copy of ``model`` in train mode and a fresh ``optimizer`` of the same
    class and settings over the copy's parameters (its state, e.g. momentum, left behind).

    Raises:
        Exception: whatever ``copy.deepcopy`` raises for a model that cannot be copied.
    """
    twin = copy.deepcopy(model).train()
    for p in twin.parameters():
        p.grad = None
    if optimizer is None:
        return twin, None
    mapping = {id(p): q for p, q in zip(model.parameters(), twin.parameters(), strict=True)}
    groups = []
    for group in optimizer.param_groups:
        settings = {k: v for k, v in group.items() if k != "params"}
        params = [mapping[id(p)] for p in group["params"] if id(p) in mapping]
        groups.append({**settings, "params": params})
    cls: Any = type(optimizer)
    try:
        return twin, cls(groups, **optimizer.defaults)
    except TypeError:  # an optimizer whose defaults are not all __init__ arguments
        return twin, cls(groups)
