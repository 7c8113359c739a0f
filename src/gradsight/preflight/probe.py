"""One observed training step at initialisation: forward with hooks, loss, backward.

The checks of outputs, activations and gradients all read the same :class:`Probe`, so the
model runs forward and backward once for all of them. Forward hooks only read tensors (no
``register_full_backward_hook``, which would add nodes to the graph).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gradsight.autograd.handles import HookHandle
from gradsight.preflight.guard import preserved

__all__ = [
    "ACTIVATION_KINDS",
    "LayerStat",
    "LossFn",
    "ParamStat",
    "Probe",
    "loss_kind",
    "run_probe",
]

#: ``loss_fn(outputs, targets) -> scalar loss``, like ``nn.CrossEntropyLoss()``.
LossFn = Callable[[Tensor, Tensor], Tensor]

#: Module types whose outputs the activation checks judge, by kind.
ACTIVATION_KINDS: dict[str, tuple[type[nn.Module], ...]] = {
    "relu": (nn.ReLU, nn.ReLU6),
    "sigmoid": (nn.Sigmoid,),
    "tanh": (nn.Tanh,),
}


def loss_kind(loss_fn: LossFn) -> str:
    """``cross_entropy``, ``nll`` or ``other``: what a loss expects of the outputs."""
    if loss_fn is F.cross_entropy or isinstance(loss_fn, nn.CrossEntropyLoss):
        return "cross_entropy"
    if loss_fn is F.nll_loss or isinstance(loss_fn, nn.NLLLoss):
        return "nll"
    return "other"


@dataclass(frozen=True)
class LayerStat:
    """One call of a leaf module in the probe's forward pass.

    Attributes:
        name: the module's qualified name; ``#2`` appended for its second call.
        kind: ``relu``, ``sigmoid``, ``tanh``, ``weighted`` (has parameters) or ``other``.
        rms: root mean square of the output.
        finite: whether every output value is finite.
        dead: fraction of units (channels of a conv output, features of a linear one) that
            are 0 for every sample and position; relu only.
        saturated: fraction of outputs within 0.01 of the bounds; sigmoid/tanh only.
    """

    name: str
    kind: str
    rms: float
    finite: bool
    dead: float | None = None
    saturated: float | None = None


@dataclass(frozen=True)
class ParamStat:
    """One parameter after the probe's backward pass."""

    name: str
    shape: tuple[int, ...]
    requires_grad: bool
    has_grad: bool  # .grad was set by the backward pass
    weight_norm: float
    grad_norm: float | None  # None without a gradient
    finite: bool  # the gradient holds no NaN/Inf


@dataclass
class Probe:
    """What one forward and backward pass at initialisation showed (no tensors of the graph)."""

    inputs: Tensor  # (B, ...) the probe batch
    targets: Tensor  # (B,) class indices, or what loss_fn takes
    output: Tensor | None = None  # detached model output, None when the forward failed
    error: str | None = None  # why the forward, loss or backward failed
    failed_at: str | None = None  # "forward", "loss" or "backward"
    loss: float | None = None
    layers: list[LayerStat] = field(default_factory=list)
    params: list[ParamStat] = field(default_factory=list)


def _kind(module: nn.Module) -> str:
    for kind, types in ACTIVATION_KINDS.items():
        if isinstance(module, types):
            return kind
    return "weighted" if any(True for _ in module.parameters(recurse=False)) else "other"


def _layer_stat(name: str, kind: str, out: Tensor) -> LayerStat:
    y = out.detach().float()
    finite = bool(torch.isfinite(y).all())
    rms = float(y.pow(2).mean().sqrt()) if y.numel() else 0.0
    dead = saturated = None
    if kind == "relu" and y.dim() >= 2:
        per_unit = y.transpose(0, 1).reshape(y.shape[1], -1)  # (units, B * positions)
        dead = float((per_unit <= 0).all(dim=1).float().mean())
    elif kind == "sigmoid":
        saturated = float(((y < 0.01) | (y > 0.99)).float().mean())
    elif kind == "tanh":
        saturated = float((y.abs() > 0.99).float().mean())
    return LayerStat(name, kind, rms, finite, dead, saturated)


def _hooks(model: nn.Module, layers: list[LayerStat]) -> HookHandle:
    calls: dict[str, int] = {}

    def make(name: str, kind: str) -> Any:
        def hook(module: nn.Module, args: Any, out: Any) -> None:
            if isinstance(out, Tensor) and out.is_floating_point():
                calls[name] = calls.get(name, 0) + 1
                label = name if calls[name] == 1 else f"{name}#{calls[name]}"
                layers.append(_layer_stat(label, kind, out))

        return hook

    return HookHandle(
        m.register_forward_hook(make(name, _kind(m)))
        for name, m in model.named_modules()
        if name and not any(True for _ in m.children())
    )


def _param_stats(model: nn.Module) -> list[ParamStat]:
    stats = []
    for name, p in model.named_parameters():
        g = p.grad
        stats.append(
            ParamStat(
                name, tuple(p.shape), p.requires_grad, g is not None,
                float(p.detach().float().norm()),
                None if g is None else float(g.float().norm()),
                g is None or bool(torch.isfinite(g).all()),
            )
        )  # fmt: skip
    return stats


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def run_probe(model: nn.Module, inputs: Tensor, targets: Tensor, loss_fn: LossFn) -> Probe:
    """Run one forward and backward pass on ``model`` in train mode and record what it shows.

    The model is left as it was (see :func:`~gradsight.preflight.guard.preserved`). An
    exception in the model or the loss is recorded in ``Probe.error``, not raised.
    """
    probe = Probe(inputs, targets)
    with preserved(model), _hooks(model, probe.layers):
        try:
            probe.failed_at = "forward"
            out = model(inputs)
            if not isinstance(out, Tensor):
                probe.error = f"the model returned {type(out).__name__}, not a tensor"
                return probe
            probe.output, probe.failed_at = out.detach(), "loss"
            loss = loss_fn(out, targets)
            probe.loss, probe.failed_at = float(loss.detach()), "backward"
            loss.backward()
            probe.failed_at = None
        except Exception as exc:  # the user's model or loss: say what, do not crash
            probe.error = _first_line(exc)
        probe.params = _param_stats(model)
    return probe
