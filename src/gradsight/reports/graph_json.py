"""The stable JSON form of an :class:`AutogradGraph` (documented in the README)."""

from __future__ import annotations

import json
import math
from typing import Any

from gradsight.observers.graph import AutogradGraph, GraphEdge, GraphNode

__all__ = ["graph_to_dict", "graph_to_json"]


def _num(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _shape(shape: tuple[int, ...] | None) -> list[int] | None:
    return list(shape) if shape is not None else None


def _node(n: GraphNode) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": n.id,
        "kind": n.kind,
        "name": n.name,
        "module": n.module,
        "shape": _shape(n.shape),
        "grad_norm": _num(n.grad_norm),
        "nonfinite": n.nonfinite,
    }
    if n.saved:
        out["saved"] = [
            {"name": s.name, "shape": _shape(s.shape), "dtype": s.dtype, "value": s.value}
            for s in n.saved
        ]
    if n.ops:
        out["ops"] = list(n.ops)
    if n.call:
        out["call"] = n.call
    return out


def _edge(e: GraphEdge) -> dict[str, Any]:
    return {
        "src": e.src,
        "dst": e.dst,
        "shape": _shape(e.shape),
        "grad_norm": _num(e.grad_norm),
        "nonfinite": e.nonfinite,
    }


def graph_to_dict(graph: AutogradGraph) -> dict[str, Any]:
    """Return the graph as JSON-ready data; NaN/Inf norms become null (see ``nonfinite``)."""
    return {
        "level": graph.level,
        "nodes": [_node(n) for n in graph.nodes],
        "edges": [_edge(e) for e in graph.edges],
        "no_grad_params": [{"name": p.name, "reason": p.reason} for p in graph.no_grad_params],
    }


def graph_to_json(graph: AutogradGraph) -> str:
    """Return the graph as indented JSON text."""
    return json.dumps(graph_to_dict(graph), indent=1) + "\n"
