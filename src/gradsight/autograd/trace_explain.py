"""One-line explanations of backward ops, computed from the real tensors of a traced backward.

``static_facts`` reads a node's non-tensor attributes (they outlive the backward pass);
``facts_before`` runs in the node's pre-hook, while its saved tensors still exist (the node
frees them when it runs); ``explain`` turns those facts and the gradient sizes into a line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.autograd.graph import Node

from gradsight.autograd.capture import behind_hook
from gradsight.autograd.gradstats import GradStats, Scratch, count_where, dense_view

__all__ = ["explain", "facts_before", "needs_facts", "static_facts"]

Facts = dict[str, Any]

_MAXPOOL = "MaxPool2DWithIndicesBackward"


def static_facts(node: Node) -> Facts:
    """Facts from ``node``'s non-tensor attributes: a max-pool's kernel, and whether its
    windows are disjoint (then each output gradient goes to a different input position,
    and the gradient sizes alone give the coverage)."""
    if not type(node).__name__.startswith(_MAXPOOL):
        return {}
    kernel = _saved(node, "kernel_size")
    return {
        "kernel": kernel,
        "disjoint": _disjoint(kernel, _saved(node, "stride"), _saved(node, "dilation")),
    }


def needs_facts(node: Node) -> bool:
    """Whether an explanation needs ``facts_before`` to read ``node``'s saved tensors: a
    ReLU's output, and a max-pool's arg-max indices when its windows overlap."""
    name = type(node).__name__
    if name.startswith("ReluBackward"):
        return True
    return name.startswith(_MAXPOOL) and not static_facts(node)["disjoint"]


def _shape(shape: Sequence[int] | None) -> str:
    return "x".join(map(str, shape)) if shape else "scalar"


def _saved(node: Node, name: str) -> Any:
    if behind_hook(node, name):  # checkpointed or offloaded: reading it would change the run
        return None
    try:
        return getattr(node, f"_saved_{name}", None)
    except RuntimeError:  # already freed
        return None


def facts_before(node: Node, scratch: Scratch | None = None, defer: bool = False) -> Facts:
    """Measure what an explanation needs from ``node``'s saved tensors, before it runs.

    ``defer``: leave the measured fractions as 0-d device tensors (no sync); the caller
    reads them later.
    """
    name = type(node).__name__
    if name.startswith("ReluBackward"):
        result = _saved(node, "result")
        if isinstance(result, torch.Tensor) and result.numel():
            return {"zeroed": _fraction_not_positive(result, scratch, defer)}
    if name.startswith(_MAXPOOL):
        indices, inp = _saved(node, "result1"), _saved(node, "self")
        if isinstance(indices, torch.Tensor) and isinstance(inp, torch.Tensor):
            facts = static_facts(node)
            if facts["disjoint"]:
                hits: Any = indices.numel()  # one distinct input position per window
            else:
                hits = _positions_hit(indices, inp, scratch or Scratch())
                hits = hits if defer else float(hits)
            return {**facts, "hit_fraction": hits / inp.numel()}
    return {}


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


def _relu(f: Facts, r: GradStats | None, p: list[GradStats | None]) -> str:
    zeroed = f.get("zeroed")
    part = f" and zeroed {zeroed:.0%} of it" if zeroed is not None else ""
    return f"ReLU backward: passed the gradient where the input was > 0{part}"


def _maxpool(f: Facts, r: GradStats | None, p: list[GradStats | None]) -> str:
    k = f.get("kernel") or ("k", "k")
    n = r.numel if r else "each"
    hit = f.get("hit_fraction")
    if hit is None and f.get("disjoint") and r is not None and p and p[0] is not None:
        hit = r.numel / p[0].numel if p[0].numel else None  # outputs / inputs
    zero = f" , {1 - hit:.0%} of input positions get zero" if hit is not None else ""
    return (
        f"MaxPool backward: routed each of {n} gradients to the arg-max of its "
        f"{k[0]}x{k[-1]} window{zero}".replace(" ,", ",")
    )


def _addmm(f: Facts, r: GradStats | None, p: list[GradStats | None]) -> str:
    w = next((s for s in reversed(p) if s is not None and len(s.shape) == 2), None)
    size = f" ({_shape(w.shape[::-1])})" if w else ""
    return (
        f"Addmm backward (Linear): grad_W = grad_out^T @ input{size}, grad_b = sum of grad_out "
        "over the batch, grad_input = grad_out @ W"
    )


def _conv(f: Facts, r: GradStats | None, p: list[GradStats | None]) -> str:
    w = p[1] if len(p) > 1 and p[1] is not None else None
    size = f" {_shape(w.shape)}" if w else ""
    tail = "" if p and p[0] is not None else "; no grad_input (the input needs none)"
    return (
        f"Convolution backward: grad_W{size} by correlating the input with grad_out, "
        f"grad_b by summing grad_out over batch and positions{tail}"
    )


_RULES: dict[str, Callable[[Facts, GradStats | None, list[GradStats | None]], str]] = {
    "ReluBackward": _relu,
    "MaxPool2DWithIndicesBackward": _maxpool,
    "AddmmBackward": _addmm,
    "ConvolutionBackward": _conv,
    "NllLossBackward": lambda f, r, p: (
        "NLL loss backward: -1/N at each sample's target log-probability, 0 elsewhere"
    ),
    "LogSoftmaxBackward": lambda f, r, p: (
        "LogSoftmax backward: grad - softmax * sum(grad); with NLL this is (softmax - onehot)/N"
    ),
    "ViewBackward": lambda f, r, p: (
        f"View backward: reshaped the gradient {_shape(r.shape if r else None)} -> "
        f"{_shape(p[0].shape if p and p[0] else None)}"
    ),
    "TBackward": lambda f, r, p: "Transpose backward: transposed the gradient back",
}


def explain(
    name: str,
    facts: Facts,
    received: GradStats | None,
    produced: list[GradStats | None],
    param: str | None = None,
    accumulated: bool = False,
) -> str:
    """Return one line saying what backward node ``name`` just computed."""
    if param is not None or name == "AccumulateGrad":
        target = f"{param}.grad" if param else "the leaf's .grad"
        verb = "added to" if accumulated else "stored into"
        return f"AccumulateGrad: {verb} {target}"
    for prefix, rule in _RULES.items():
        if name.startswith(prefix):
            return rule(facts, received, produced)
    sizes = ", ".join(_shape(s.shape) for s in produced if s is not None) or "nothing"
    return f"{name}: turned the incoming gradient into gradients of shape {sizes}"
