"""One-line explanations of backward ops, computed from the real tensors of a traced backward.

``static_facts`` reads a node's non-tensor attributes (they outlive the backward pass): a
loss's reduction, a convolution's stride, the sizes of a matrix product's operands;
``facts_before`` runs in the node's pre-hook, while its saved tensors still exist (the node
frees them when it runs) and its incoming gradient is at hand; ``explain`` turns those facts
and the gradient sizes into a line. A saved tensor behind a saved-tensor hook (activation
checkpointing, offloading) is never read: its fact is left out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.autograd.graph import Node

from gradsight.autograd.capture import behind_hook
from gradsight.autograd.gradstats import GradStats, Scratch, count_where, dense_view

__all__ = [
    "MAXPOOL_NODE", "NLL_NODE", "Facts", "Stats", "facts_before", "needs_facts", "static_facts",
]  # fmt: skip

Facts = dict[str, Any]
Stats = list[GradStats | None]

MAXPOOL_NODE = "MaxPool2DWithIndicesBackward"
NLL_NODE = "NllLoss"  # NllLossBackward0, NllLoss2DBackward0
_LOSSES = (NLL_NODE, "MseLossBackward")
_REDUCTIONS = {0: "none", 1: "mean", 2: "sum"}  # at::Reduction, as the nodes save it


def _saved(node: Node, name: str) -> Any:
    if behind_hook(node, name):  # checkpointed or offloaded: reading it would change the run
        return None
    try:
        value = getattr(node, f"_saved_{name}", None)
    except RuntimeError:  # already freed
        return None
    if isinstance(value, int) and value >= 2**63:  # a negative int64 read back as uint64
        return value - 2**64
    return value


def _maxpool_static(node: Node) -> Facts:
    kernel = _saved(node, "kernel_size")
    return {
        "kernel": kernel,
        "disjoint": _disjoint(kernel, _saved(node, "stride"), _saved(node, "dilation")),
    }


def _loss_static(node: Node) -> Facts:
    facts: Facts = {"reduction": _REDUCTIONS.get(_saved(node, "reduction"))}
    if type(node).__name__.startswith(NLL_NODE):
        facts["ignore_index"] = _saved(node, "ignore_index")
        # an undefined weight passes no hook, so a hooked one is a real class weight
        facts["weighted"] = behind_hook(node, "weight") or _saved(node, "weight") is not None
    return facts


def _matmul_static(node: Node) -> Facts:
    """Addmm (self + mat1 @ mat2) or Mm (self @ mat2): the operands' sizes, and whether
    mat2 is a transposed weight, as ``F.linear`` makes it."""
    first = "mat1" if hasattr(node, "_saved_mat1_sym_sizes") else "self"
    last = node.next_functions[-1][0] if node.next_functions else None
    return {
        "a": tuple(_saved(node, f"{first}_sym_sizes") or ()) or None,
        "b": tuple(_saved(node, "mat2_sym_sizes") or ()) or None,
        "linear": last is not None and type(last).__name__.startswith("TBackward"),
        "alpha": _saved(node, "alpha"),
        "beta": _saved(node, "beta"),
    }


def _conv_static(node: Node) -> Facts:
    facts = {k: _saved(node, k) for k in ("stride", "padding", "dilation", "groups", "transposed")}
    for k, name in enumerate(("input", "weight")):
        if node.next_functions[k][0] is None:  # no gradient of it will carry its shape
            saved = _saved(node, name)  # the tensor's metadata; its values are not read
            facts[name] = tuple(saved.shape) if isinstance(saved, torch.Tensor) else None
    return facts


_STATIC: dict[str, Callable[[Node], Facts]] = {
    MAXPOOL_NODE: _maxpool_static,
    **dict.fromkeys(_LOSSES, _loss_static),
    "AddmmBackward": _matmul_static,
    "MmBackward": _matmul_static,
    "ConvolutionBackward": _conv_static,
    "LogSoftmaxBackward": lambda node: {"dim": _saved(node, "dim")},
}


def static_facts(node: Node) -> Facts:
    """Facts from ``node``'s non-tensor attributes (and saved tensors' shapes): a max-pool's
    kernel and whether its windows are disjoint, a loss's reduction, a matrix product's
    operand sizes, a convolution's stride and padding. Cheap: no tensor's values are read."""
    name = type(node).__name__
    for prefix, read in _STATIC.items():
        if name.startswith(prefix):
            return read(node)
    return {}


def needs_facts(node: Node, full: bool = True) -> bool:
    """Whether an explanation needs ``facts_before`` in ``node``'s pre-hook: a reduced
    loss's incoming gradient (one number, read in either detail); in full detail (``full``)
    also a ReLU's output, and a max-pool's arg-max indices when its windows overlap."""
    name = type(node).__name__
    if name.startswith(_LOSSES):
        return _loss_static(node)["reduction"] in ("mean", "sum")
    if not full:
        return False
    if name.startswith("ReluBackward"):
        return True
    return name.startswith(MAXPOOL_NODE) and not _maxpool_static(node)["disjoint"]


def facts_before(
    node: Node,
    scratch: Scratch | None = None,
    defer: bool = False,
    grad_outputs: Sequence[torch.Tensor | None] = (),
    full: bool = True,
) -> Facts:
    """Measure what an explanation needs from ``node``'s saved tensors, before it runs.

    ``grad_outputs``: the gradients the node is about to receive (a reduced loss reads its
    one-number gradient). ``full``: False reads only one-number tensors, as ``"norm"``
    detail does. ``defer``: leave measured numbers as 0-d device tensors (no sync); the
    caller reads them later.
    """
    name = type(node).__name__
    if name.startswith(_LOSSES):
        return _loss_facts(node, grad_outputs, defer)
    if not full:
        return {}
    if name.startswith("ReluBackward"):
        result = _saved(node, "result")
        if isinstance(result, torch.Tensor) and result.numel():
            return {"zeroed": _fraction_not_positive(result, scratch, defer)}
    if name.startswith(MAXPOOL_NODE):
        indices, inp = _saved(node, "result1"), _saved(node, "self")
        if isinstance(indices, torch.Tensor) and isinstance(inp, torch.Tensor):
            facts = _maxpool_static(node)
            if facts["disjoint"]:
                hits: Any = indices.numel()  # one distinct input position per window
            else:
                hits = _positions_hit(indices, inp, scratch or Scratch())
                hits = hits if defer else float(hits)
            return {**facts, "hit_fraction": hits / inp.numel()}
    return {}


def _loss_facts(node: Node, grad_outputs: Sequence[torch.Tensor | None], defer: bool) -> Facts:
    """A reduced loss's incoming gradient g (1 for ``loss.backward()``, 3 below ``loss * 3``)
    and, for NLL, the weight total it divided by (N, unless targets were ignored)."""
    facts: Facts = {}
    seed = grad_outputs[0] if len(grad_outputs) == 1 else None
    if isinstance(seed, torch.Tensor) and seed.layout == torch.strided and seed.numel() == 1:
        facts["seed"] = _number(seed, defer)
    total = _saved(node, "total_weight") if type(node).__name__.startswith(NLL_NODE) else None
    if isinstance(total, torch.Tensor) and total.numel() == 1:
        facts["total_weight"] = _number(total, defer)
    return facts


def _number(t: torch.Tensor, defer: bool) -> Any:
    """A one-element tensor's value, or (deferred) a copy of it to read after the backward."""
    return t.detach().clone().reshape(()) if defer else float(t)


def _fraction_not_positive(result: torch.Tensor, scratch: Scratch | None, defer: bool) -> Any:
    """Fraction of ``relu(x)`` that is <= 0, i.e. where x <= 0: there threshold_backward
    zeroes the gradient (a NaN result passes its gradient on)."""
    flat = dense_view(result)
    if flat is not None:
        return count_where(flat, np.less_equal, 0) / flat.size
    fraction = (scratch or Scratch()).count(torch.le, result, 0) / result.numel()
    return fraction if defer else float(fraction)


def _disjoint(kernel: Any, stride: Any, dilation: Any) -> bool:
    """Whether no two pooling windows share an input position (e.g. 2x2 windows, stride 2)."""
    if not kernel or not dilation:
        return False
    stride = stride or kernel  # an empty stride means stride = kernel_size
    return all(s >= d * (k - 1) + 1 for k, s, d in zip(kernel, stride, dilation, strict=True))


def _positions_hit(indices: torch.Tensor, inp: torch.Tensor, scratch: Scratch) -> torch.Tensor:
    """How many input positions receive a gradient: overlapping windows may share an arg-max."""
    planes = indices.flatten(0, -3).flatten(1)  # (N*C, outH*outW) flat input indices
    shape = torch.Size((planes.shape[0], inp.shape[-2] * inp.shape[-1]))
    dtype = torch.float32 if inp.numel() < 2**24 else torch.float64  # exact sums
    hit = scratch.buffer(shape, dtype, planes.device).zero_()
    hit.scatter_(1, planes, 1.0)  # 1 where a position gets a gradient
    return hit.sum()
