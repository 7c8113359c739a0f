"""Find where a NaN/Inf was born: replay one batch from the pre-step weights and watch it.

In order: weights that were already NaN/Inf (phase ``weights``); a batch that already held
NaN/Inf (``input``); the torch function, and the innermost module running it, that turned
finite values into NaN/Inf in the forward pass (``forward``); else the first autograd node,
in execution order, that produced a non-finite gradient from a finite one (``backward``).

The replay runs the user's own loss function on the real module, never a copy (models that
cannot be deep-copied work): it sets the gradients aside, restores the random state of the
step's forward so dropout repeats, runs a compiled model eagerly, and afterwards puts back
the buffers, gradients and random state it found. Parameters are not copied: a forward and
backward pass do not write them (a ``loss_fn`` that does is warned about).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from gradsight.autograd.attribution import ModuleAttribution, is_compiled, module_type, unwrap
from gradsight.autograd.tensors import has_nonfinite
from gradsight.autograd.trace import trace_backward
from gradsight.health.naming import place, summarize
from gradsight.health.sentinel import NonFiniteSentinel, SentinelHit

__all__ = ["Birthplace", "LossFn", "RngState", "locate_nonfinite", "replaying", "rng_state"]

LossFn = Callable[[nn.Module, Any], Tensor]
"""``loss_fn(model, batch) -> loss``: the scalar loss exactly as the training step makes it."""

RngState = tuple[Tensor, dict[int, Tensor]]  # the CPU generator, and each CUDA device's


@dataclass(frozen=True)
class Birthplace:
    """Where the first NaN/Inf appeared, or phase None when the replay did not reproduce it.

    ``module`` is a qualified name (``""``: the root model's own ``forward``; None: outside
    the model), ``op`` the torch function (forward, e.g. ``"log"``) or the autograd node
    (backward, e.g. ``"SqrtBackward0"``), ``where`` a phrase for the message.
    """

    phase: str | None  # "weights" | "input" | "forward" | "backward" | None
    module: str | None
    op: str | None
    where: str
    module_type: str | None = None
    params: tuple[str, ...] = field(default=())  # phase "weights": the non-finite ones


def rng_state(devices: list[int]) -> RngState:
    """Snapshot the CPU random state and that of the given CUDA devices (a few us)."""
    return torch.get_rng_state(), {d: torch.cuda.get_rng_state(d) for d in devices}


def cuda_devices(model: nn.Module) -> list[int]:
    """The CUDA devices holding ``model``'s parameters."""
    return sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})


def locate_nonfinite(
    model: nn.Module, batch: Any, loss_fn: LossFn, rng: RngState | None = None
) -> Birthplace:
    """Find where the NaN/Inf of one failing step was born by replaying it.

    Args:
        model: the model with the weights of the failing step (before the optimizer step);
            a ``torch.compile`` wrapper is replayed eagerly.
        batch: the failing batch, passed to ``loss_fn`` as it is.
        loss_fn: ``loss_fn(model, batch) -> loss``, as the training step computes it
            (its outputs, its loss, its autocast).
        rng: the random state from just before the step's forward (see :func:`rng_state`),
            so dropout draws the same masks; None replays with the current state.

    Returns:
        The :class:`Birthplace`. The model's parameters, buffers, ``.grad`` and the random
        state are as they were before the call.
    """
    inner = unwrap(model)
    every = [n for n, _ in inner.named_parameters()]
    weights = [n for n, p in inner.named_parameters() if has_nonfinite(p)]
    if weights:
        where = (
            "the weights held NaN/Inf before this step's forward pass "
            f"({summarize(weights, every)}): an earlier update wrote them (lower the lr or clip)"
        )
        layer = weights[0].rpartition(".")[0]
        return Birthplace("weights", layer, None, where, params=tuple(weights))
    inputs = _nonfinite_inputs(batch)
    if inputs is not None:
        return Birthplace("input", None, None, inputs)
    with replaying(model, rng):
        with ModuleAttribution(inner) as modules, NonFiniteSentinel(inner) as sentinel:
            loss = loss_fn(model, batch)
        if has_nonfinite(loss):
            return _forward_birth(sentinel.origin(loss) or sentinel.hit)
        return _backward_birth(inner, loss, modules)


def _forward_birth(hit: SentinelHit | None) -> Birthplace:
    if hit is None:  # NaN/Inf from a path torch functions do not show
        return Birthplace("forward", None, None, "born in the forward pass")
    if hit.op == "input":
        where = (
            f"born in the forward pass: {place(hit.module, hit.module_type)} read a tensor that "
            "already held NaN/Inf (a buffer, or a tensor from outside the model)"
        )
        return Birthplace("forward", hit.module, None, where, hit.module_type)
    if hit.module is None:
        at = "the loss (outside the model)"
    elif hit.module == "":
        at = f"{hit.module_type}.forward"
    else:
        at = f"{hit.module} ({hit.module_type}.forward)"
    where = f"born in the forward pass in {at}, op {hit.op}"
    return Birthplace("forward", hit.module, hit.op, where, hit.module_type)


def _backward_birth(model: nn.Module, loss: Tensor, modules: ModuleAttribution) -> Birthplace:
    if loss.grad_fn is None:
        return Birthplace(None, None, None, "the replayed loss has no gradient")
    trace = trace_backward(loss, model, modules, detail="norm")
    for event in trace.events:
        received = event.received[0]
        bad_out = any(s is not None and s.nonfinite for s in event.produced)
        finite_in = received is None or (received.nonfinite == 0 and math.isfinite(received.norm))
        if bad_out and finite_in:
            kind = module_type(model, event.module)
            where = f"born in the backward pass at {event.name} in {place(event.module, kind)}"
            return Birthplace("backward", event.module, event.name, where, kind)
    where = "not reproduced: the replay from the pre-step weights was finite (a random op?)"
    return Birthplace(None, None, None, where)


def _paths(value: Any, path: str) -> Iterator[tuple[str, Tensor]]:
    """Yield (path, tensor) for every tensor in ``value``: ``batch[0]``, ``batch['x']``."""
    if isinstance(value, Tensor):
        yield path, value
    elif isinstance(value, (tuple, list)):
        for i, item in enumerate(value):
            yield from _paths(item, f"{path}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, f"{path}[{key!r}]")


def _nonfinite_inputs(batch: Any) -> str | None:
    """A phrase naming the NaN/Inf values of the batch and their samples, or None."""
    for path, t in _paths(batch, "batch"):
        if not (t.is_floating_point() or t.is_complex()) or not has_nonfinite(t):
            continue
        bad = ~torch.isfinite(t.detach())
        count = int(bad.sum())
        if t.dim() == 0:
            return f"the input batch already held NaN/Inf in {path}; check the data"
        rows = bad.reshape(t.shape[0], -1).any(1).nonzero().flatten().tolist()
        shown = ", ".join(map(str, rows[:8])) + (", ..." if len(rows) > 8 else "")
        return (
            f"the input batch already held {count} NaN/Inf value{'s' * (count != 1)}, in "
            f"{len(rows)} of {t.shape[0]} samples of {path} ({shown}); check the data"
        )
    return None


@contextmanager
def replaying(model: nn.Module, rng: RngState | None = None) -> Iterator[None]:
    """Run the block as a side-effect-free replay of a step on the real ``model``: the
    ``.grad`` of every parameter set aside, buffers copied, the random state forked (and
    set to ``rng`` when given), a compiled model run eagerly; all put back on exit.

    Buffers (batch-norm statistics) are copied and put back. Parameters are not copied, so
    a large model needs no second copy of its weights at the failing step: a forward and
    backward pass do not write them, which their version counters confirm afterwards.
    """
    inner = unwrap(model)
    params = dict(inner.named_parameters())
    grads = {n: p.grad for n, p in params.items()}
    versions = {n: p._version for n, p in params.items()}
    with torch.no_grad():
        buffers = [(b, b.clone()) for _, b in inner.named_buffers()]
    devices = sorted(set(rng[1]) if rng is not None else cuda_devices(inner))
    stance = torch.compiler.set_stance("force_eager") if is_compiled(model) else nullcontext()
    try:
        with torch.random.fork_rng(devices=devices), stance:
            if rng is not None:
                torch.set_rng_state(rng[0])
                for device, state in rng[1].items():
                    torch.cuda.set_rng_state(state, device)
            for p in params.values():
                p.grad = None
            yield
    finally:
        with torch.no_grad():
            for buffer, saved in buffers:
                buffer.copy_(saved)
        for name, p in params.items():
            p.grad = grads[name]
        written = [n for n, p in params.items() if p._version != versions[n]]
        if written:
            warnings.warn(
                f"the NaN/Inf replay's loss_fn wrote {summarize(written, list(params))} in "
                "place; those weights now differ from the step's (a forward pass that "
                "changes its own parameters cannot be replayed without side effects)",
                stacklevel=2,
            )
