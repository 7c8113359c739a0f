"""The sentences of the backward trace: what each node computed, in words, from the facts
:mod:`gradsight.autograd.trace_explain` gathered and the gradient sizes the trace measured."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from gradsight.autograd.gradstats import GradStats
from gradsight.autograd.trace_explain import MAXPOOL_NODE, NLL_NODE, Facts, Stats

__all__ = ["explain"]


def _shape(shape: Sequence[int] | None) -> str:
    return "x".join(map(str, shape)) if shape else "scalar"


def _sized(label: str, shape: Sequence[int] | None) -> str:
    """``label (64x10)``, or just ``label`` where the shape is unknown."""
    return f"{label} ({_shape(shape)})" if shape is not None else label


def _at(p: Stats, k: int) -> tuple[int, ...] | None:
    stats = p[k] if k < len(p) else None
    return stats.shape if stats is not None else None


def _num(x: float) -> str:
    return f"{x:.4g}"


def _relu(f: Facts, r: GradStats | None, p: Stats) -> str:
    zeroed = f.get("zeroed")
    part = f" and zeroed {zeroed:.0%} of it" if zeroed is not None else ""
    return f"ReLU backward: passed the gradient where the input was > 0{part}"


def _maxpool(f: Facts, r: GradStats | None, p: Stats) -> str:
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


def _nll(f: Facts, r: GradStats | None, p: Stats) -> str:
    """-g * w[target] / W at each target log-probability: g the gradient the loss received,
    w the class weights (1 without), W their total over the targets (mean) or 1 (sum)."""
    reduction, weighted = f.get("reduction"), bool(f.get("weighted"))
    if reduction is None:  # torch did not say
        return "NLL loss backward: the scaled, negated gradient at each sample's target"
    if reduction == "none":  # a gradient per sample
        factor = "-w[target] times" if weighted else "minus"
        received = _sized("received gradient", r.shape if r is not None else None)
        where = "at its target log-probability, 0 elsewhere"
        return f"NLL loss backward (none): {factor} each sample's {received} {where}"
    g, total, ii = f.get("seed"), f.get("total_weight"), f.get("ignore_index")
    notes = [f"g = {_num(g)} is the gradient it received"] if g not in (1, None) else []
    logits = _at(p, 0)  # (N, C, d1, ...) -> N*d1*... targets; (C,) -> 1
    samples = int(math.prod(logits)) // logits[1] if logits and len(logits) > 1 else 1
    unread = ", not read: it is behind a saved-tensor hook" if total is None else ""
    if weighted and reduction == "mean":
        notes.append(f"W = the sum of the targets' class weights{unread}")
    elif not weighted and total is not None and round(total) < samples:
        counted = " and are not counted in N" if reduction == "mean" else ""
        notes.append(
            f"the samples whose target is ignore_index {ii} "
            f"({samples - round(total)} of {samples}) get 0{counted}"
        )
    elif total is None and reduction == "mean":
        notes.append(f"N = the count of targets other than ignore_index {ii}{unread}")
    mean = ("W" if weighted else "N", total) if reduction == "mean" else None
    expr = _scale(g, "w[target]" if weighted else "", mean)
    tail = "".join(f"; {note}" for note in notes)
    where = "at each sample's target log-probability, 0 elsewhere"
    return f"NLL loss backward ({reduction}): {expr} {where}{tail}"


def _scale(g: float | None, factor: str, denominator: tuple[str, float | None] | None) -> str:
    """``-g*factor/N = -3*factor/64``: the symbols, then the values where they are known."""
    symbol = "-" + ("*".join(s for s in ("g" if g != 1 else "", factor) if s) or "1")
    value = symbol
    if g is not None:
        number = _num(abs(g)) if abs(g) != 1 or not factor else ""  # no "1*w[target]"
        value = ("-" if g > 0 else "") + "*".join(s for s in (number, factor) if s)
    if denominator is not None:
        name, known = denominator
        symbol += f"/{name}"
        value += f"/{_num(known) if known is not None else name}"
    return symbol if symbol == value else f"{symbol} = {value}"


def _mse(f: Facts, r: GradStats | None, p: Stats) -> str:
    """2g(input - target)/N to the input (mean), without /N (sum), its negative to the target."""
    reduction, g = f.get("reduction"), f.get("seed")
    target = "; its negative to the target" if len(p) > 1 and p[1] is not None else ""
    if reduction is None:  # torch did not say
        return f"MSE loss backward: 2*(input - target), scaled, to the input{target}"
    if reduction == "none":
        each = "times each element's received gradient"
        return f"MSE loss backward (none): 2*(input - target) {each} to the input{target}"
    symbol = ("2g" if g != 1 else "2") + "*(input - target)"
    value = f"{_num(2 * g)}*(input - target)" if g is not None else symbol
    if reduction == "mean":
        shape = _at(p, 0) or _at(p, 1)
        symbol, value = symbol + "/N", value + f"/{int(math.prod(shape)) if shape else 'N'}"
    expr = symbol if symbol == value else f"{symbol} = {value}"
    received = f" (g = {_num(g)} is the gradient it received)" if g not in (1, None) else ""
    return f"MSE loss backward ({reduction}): {expr} to the input{received}{target}"


def _log_softmax(f: Facts, r: GradStats | None, p: Stats) -> str:
    dim, shape = f.get("dim"), r.shape if r is not None else None
    if isinstance(dim, int) and shape and dim < 0:
        dim += len(shape)
    over = f" over dim {dim}" if dim is not None else ""
    of = f" of a {_shape(shape)} gradient" if shape else ""
    return (
        f"LogSoftmax backward{over}{of}: grad - softmax * sum(grad); where an NLL loss put "
        "-s at a row's target, this is s * (softmax - onehot)"
    )


def _times(name: str, value: Any) -> str:
    return f", times {name} = {value}" if value is not None and value != 1 else ""


def _matmul(f: Facts, r: GradStats | None, p: Stats) -> str:
    """Addmm (out = beta*self + alpha*mat1 @ mat2; ``F.linear``: input @ W^T + bias) or Mm."""
    addmm = len(p) == 3
    ka, kb = (1, 2) if addmm else (0, 1)
    a, b = f.get("a") or _at(p, ka), f.get("b") or _at(p, kb)
    out = r.shape if r is not None else (a[0], b[1]) if a and b else None
    linear = bool(f.get("linear"))
    na, nb = ("input", "W^T") if linear else ("mat1" if addmm else "self", "mat2")
    alpha = _times("alpha", f.get("alpha"))
    parts = []
    if p[ka] is not None:  # grad_out (N x out) @ mat2^T (out x in) -> (N x in)
        w = _sized("W" if linear else "mat2^T", b[::-1] if b else None)
        parts.append(f"{_sized('grad_out', out)} @ {w} -> {_sized(f'grad of {na}', a)}{alpha}")
    if p[kb] is not None:  # mat1^T (in x N) @ grad_out (N x out) -> (in x out)
        at = _sized(f"{na}^T", a[::-1] if a else None)
        parts.append(f"{at} @ grad_out -> {_sized(f'grad of {nb}', b)}{alpha}")
    if addmm and p[0] is not None:
        bias = p[0].shape
        rows = f" summed over its {out[0]} rows" if out and len(bias) < len(out) else ""
        target = _sized("grad of " + ("bias" if linear else "self"), bias)
        parts.append(f"grad_out{rows} -> {target}{_times('beta', f.get('beta'))}")
    parts += [f"no grad of {n} (it needs none)" for k, n in ((ka, na), (kb, nb)) if p[k] is None]
    kind = ("Addmm" if addmm else "Mm") + " backward"
    kind += (" (Linear)" if addmm else " (Linear, no bias)") if linear else ""
    return f"{kind}: " + "; ".join(parts)


def _conv(f: Facts, r: GradStats | None, p: Stats) -> str:
    x, w, b = _at(p, 0) or f.get("input"), _at(p, 1) or f.get("weight"), _at(p, 2)
    go, xs = _sized("grad_out", r.shape if r is not None else None), _sized("input", x)
    t = bool(f.get("transposed"))  # a transposed conv's backward swaps the two roles
    parts = []
    if p[0] is not None:
        how = "convolution" if t else "transposed convolution"
        parts.append(f"{how} of {go} with {_sized('W', w)} -> {_sized('grad of input', x)}")
    if p[1] is not None:
        pair = f"grad_out with the {xs}" if t else f"the {xs} with grad_out"
        parts.append(f"correlation of {pair} -> {_sized('grad of W', w)}")
    if len(p) > 2 and p[2] is not None:
        parts.append(f"grad_out summed over batch and positions -> {_sized('grad of bias', b)}")
    if p[0] is None:
        parts.append("no grad of input (the input needs none)")
    kind = "Transposed convolution" if t else "Convolution"
    return f"{kind} backward ({_conv_setup(f, w)}): " + "; ".join(parts)


def _conv_setup(f: Facts, w: tuple[int, ...] | None) -> str:
    """``3x3 kernel, stride 1, padding 1`` (dilation and groups only where not 1)."""

    def dims(v: Any) -> str:
        v = tuple(v) if isinstance(v, (tuple, list)) else (v,)
        return str(v[0]) if len(set(v)) == 1 else "x".join(map(str, v))

    parts = [f"{_shape(w[2:])} kernel"] if w and len(w) > 2 else []
    parts += [f"{k} {dims(f[k])}" for k in ("stride", "padding") if f.get(k) is not None]
    if f.get("dilation") is not None and set(f["dilation"]) != {1}:
        parts.append(f"dilation {dims(f['dilation'])}")
    if f.get("groups") not in (None, 1):
        parts.append(f"{f['groups']} groups")
    return ", ".join(parts)


def _transpose(f: Facts, r: GradStats | None, p: Stats) -> str:
    out = _at(p, 0)
    if r is None or out is None:
        return "Transpose backward: transposed the gradient back"
    return f"Transpose backward: transposed the gradient {_shape(r.shape)} -> {_shape(out)}"


_RULES: dict[str, Callable[[Facts, GradStats | None, Stats], str]] = {
    "ReluBackward": _relu,
    MAXPOOL_NODE: _maxpool,
    "AddmmBackward": _matmul,
    "MmBackward": _matmul,
    "ConvolutionBackward": _conv,
    NLL_NODE: _nll,
    "MseLossBackward": _mse,
    "LogSoftmaxBackward": _log_softmax,
    "ViewBackward": lambda f, r, p: (
        f"View backward: reshaped the gradient {_shape(r.shape if r else None)} -> "
        f"{_shape(p[0].shape if p and p[0] else None)}"
    ),
    "TBackward": _transpose,
}


def explain(
    name: str,
    facts: Facts,
    received: GradStats | None,
    produced: Stats,
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
