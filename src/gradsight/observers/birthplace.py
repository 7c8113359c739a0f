"""Find where a NaN/Inf was born: replay one batch from the pre-step weights and watch it.

Forward: the first module whose output is non-finite while its inputs were finite. If the
forward pass is clean, backward: the first autograd node (in execution order) that produced
a non-finite gradient from a finite one. The replay runs on a copy of the model, so the
real model, its buffers and its gradients are untouched.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from gradsight.observers.handles import HookHandle
from gradsight.observers.modules import ModuleTracker, has_nonfinite
from gradsight.observers.trace import trace_backward

__all__ = ["Birthplace", "locate_nonfinite"]


@dataclass(frozen=True)
class Birthplace:
    """Where the first non-finite value appeared, or phase None when the replay was clean."""

    phase: str | None  # "forward" | "backward" | None
    module: str | None
    op: str | None  # module type (forward) or autograd node name (backward)


def _forward_birth(
    model: nn.Module, inputs: Tensor, loss_fn: Callable[[Tensor], Tensor]
) -> tuple[Birthplace | None, Tensor, ModuleTracker]:
    found: list[Birthplace] = []

    def make_hook(name: str) -> Any:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if not found and not has_nonfinite(args) and has_nonfinite(output):
                found.append(Birthplace("forward", name or None, type(module).__name__))

        return hook

    leaves = [(n, m) for n, m in model.named_modules() if not any(m.children())]
    with (
        ModuleTracker(model) as modules,
        HookHandle(m.register_forward_hook(make_hook(n)) for n, m in leaves),
    ):
        loss = loss_fn(model(inputs))
    if not found and has_nonfinite(loss):
        found.append(Birthplace("forward", None, "loss"))
    return (found[0] if found else None), loss, modules


def locate_nonfinite(
    model: nn.Module, inputs: Tensor, loss_fn: Callable[[Tensor], Tensor]
) -> Birthplace:
    """Replay ``loss_fn(model(inputs))`` and its backward on a copy of ``model``.

    Args:
        model: the model with the weights of the failing step (before the optimizer step).
        inputs: the failing batch.
        loss_fn: maps the model's output to the scalar loss (targets bound in).
    """
    replica = copy.deepcopy(model)
    replica.zero_grad(set_to_none=True)
    born, loss, modules = _forward_birth(replica, inputs, loss_fn)
    if born is not None:
        return born
    trace = trace_backward(loss, replica, modules, detail="norm")
    for event in trace.events:
        received = event.received[0]
        bad_out = any(s is not None and s.nonfinite for s in event.produced)
        if bad_out and (
            received is None or (received.nonfinite == 0 and math.isfinite(received.norm))
        ):
            return Birthplace("backward", event.module, event.name)
    return Birthplace(None, None, None)
