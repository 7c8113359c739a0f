"""The stable JSON form of an :class:`AutogradGraph` (documented in the README)."""

from __future__ import annotations

import json
import math
from typing import Any

from gradsight.autograd.graph import AutogradGraph, GraphEdge, GraphNode, NoGradParam, SavedTensor

__all__ = ["graph_from_dict", "graph_to_dict", "graph_to_json"]


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


def _tuple(shape: list[int] | None) -> tuple[int, ...] | None:
    return tuple(shape) if shape is not None else None


def graph_from_dict(data: dict[str, Any]) -> AutogradGraph:
    """Rebuild an :class:`AutogradGraph` from :func:`graph_to_dict`'s data (e.g. ``graph.json``).

    Null norms stay None. Raises ``KeyError``/``TypeError`` on data of another shape.
    """
    nodes = [
        GraphNode(
            id=n["id"],
            kind=n["kind"],
            name=n["name"],
            module=n.get("module"),
            shape=_tuple(n.get("shape")),
            grad_norm=n.get("grad_norm"),
            nonfinite=n.get("nonfinite", 0),
            saved=tuple(
                SavedTensor(s["name"], _tuple(s.get("shape")), s.get("dtype"), s.get("value"))
                for s in n.get("saved", ())
            ),
            ops=tuple(n.get("ops", ())),
            call=n.get("call", 0),
        )
        for n in data["nodes"]
    ]
    edges = [
        GraphEdge(
            e["src"], e["dst"], _tuple(e.get("shape")), e.get("grad_norm"), e.get("nonfinite", 0)
        )
        for e in data["edges"]
    ]
    no_grad = [NoGradParam(p["name"], p["reason"]) for p in data.get("no_grad_params", ())]
    return AutogradGraph(nodes, edges, no_grad, level=data.get("level", "op"))
