"""Render a :class:`BackwardTrace`: a text table for the terminal, and JSON."""

from __future__ import annotations

import json
import math
from typing import Any

from gradsight.autograd.gradstats import GradStats
from gradsight.autograd.trace import BackwardTrace, TraceEvent

__all__ = ["steps_of", "trace_text", "trace_to_dict", "trace_to_json"]


def _num(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _stats(s: GradStats | None) -> dict[str, Any] | None:
    if s is None:
        return None
    return {
        "shape": list(s.shape),
        "norm": _num(s.norm),
        "max_abs": _num(s.max_abs) if s.max_abs is not None else None,
        "zeros": s.zeros,
        "nonfinite": s.nonfinite,
    }


def _event(e: TraceEvent) -> dict[str, Any]:
    return {
        "index": e.index,
        "node_id": e.node_id,
        "name": e.name,
        "module": e.module,
        "param": e.param,
        "received": [_stats(s) for s in e.received],
        "produced": [_stats(s) for s in e.produced],
        "seconds": e.seconds,
        "explanation": e.explanation,
    }


def trace_to_dict(trace: BackwardTrace) -> dict[str, Any]:
    """Return the trace as JSON-ready data (NaN/Inf norms become null; see ``nonfinite``)."""
    return {"seconds": trace.seconds, "events": [_event(e) for e in trace.events]}


def trace_to_json(trace: BackwardTrace) -> str:
    """Return the trace as indented JSON text."""
    return json.dumps(trace_to_dict(trace), indent=1) + "\n"


def steps_of(events: list[Any]) -> dict[str, int]:
    """Node id -> backward step, from the events of :func:`trace_to_dict` (``trace.json``);
    entries of another shape are left out."""
    return {e["node_id"]: e["index"] for e in events if isinstance(e, dict) and "node_id" in e}


def _brief(s: GradStats | None) -> str:
    if s is None:
        return "-"
    shape = "x".join(map(str, s.shape)) or "scalar"
    if s.nonfinite:
        return f"{shape} ({s.nonfinite} NaN/Inf)"
    return f"{shape} |g|={s.norm:.3g}"


def trace_text(trace: BackwardTrace) -> str:
    """Return the trace as plain text: per node, a line of sizes and a line of explanation.

    >>> # step  node  module      grad in -> grads out          zeros   time
    >>> #    8  ReluBackward0  relu  4x16x32x32 |g|=0.273 -> 4x16x32x32 |g|=0.26  52%  41 us
    >>> #       ReLU backward: passed the gradient where the input was > 0 and zeroed 52% of it
    """
    lines = [
        f"backward pass: {len(trace.events)} nodes in execution order, "
        f"{trace.seconds * 1e3:.1f} ms traced",
        f"{'step':>4}  {'node':<30} {'module/param':<14} grad in -> grads out  (zeros, time)",
    ]
    for e in trace.events:
        out = e.produced[0] if e.produced else None
        counted = out is not None and out.zeros is not None and out.numel
        zeros = f"{out.zeros / out.numel:.0%} zeros, " if counted else ""  # type: ignore[union-attr,operator]
        produced = ", ".join(_brief(s) for s in e.produced) or "-"
        lines.append(
            f"{e.index:>4}  {e.name:<30} {e.param or e.module or '':<14} "
            f"{_brief(e.received[0])} -> {produced}  ({zeros}{e.seconds * 1e6:.0f} us)"
        )
        lines.append(f"{'':>6}{e.explanation}")
    return "\n".join(lines) + "\n"
