"""Collapse an op-level autograd graph into its modules: loss -> fc -> pool -> relu -> conv1."""

from __future__ import annotations

import math
from collections import defaultdict

from gradsight.observers.graph import AutogradGraph, GraphEdge, GraphNode

__all__ = ["module_view"]


def _group(node: GraphNode) -> str | None:
    """The module-level node an op-level node belongs to; None for ops to see through."""
    if node.kind == "op":
        return f"module:{node.module}" if node.module else None
    return node.id  # the loss, parameters and other leaves stay themselves


def _combine(edges: list[GraphEdge]) -> tuple[tuple[int, ...] | None, float | None, int]:
    """Shape, norm and non-finite count of several gradients taken as one tensor."""
    if len(edges) == 1:
        return edges[0].shape, edges[0].grad_norm, edges[0].nonfinite
    norms = [e.grad_norm for e in edges if e.grad_norm is not None]
    norm = math.sqrt(sum(n * n for n in norms)) if len(norms) == len(edges) else None
    return None, norm, sum(e.nonfinite for e in edges)


def _crossings(graph: AutogradGraph) -> dict[tuple[str, str], list[GraphEdge]]:
    """For each pair of groups, the op-level edges by which gradient enters the second."""
    nodes = {n.id: n for n in graph.nodes}
    out: dict[str, list[GraphEdge]] = defaultdict(list)
    for edge in graph.edges:
        out[edge.src].append(edge)
    found: dict[tuple[str, str], dict[int, GraphEdge]] = defaultdict(dict)
    for start in graph.nodes:
        origin = _group(start)
        if origin is None:
            continue
        stack, seen = list(out[start.id]), set()
        while stack:  # walk through ungrouped ops (a flatten in forward, the loss's own ops)
            edge = stack.pop()
            target = _group(nodes[edge.dst])
            if target is None:
                if edge.dst not in seen:
                    seen.add(edge.dst)
                    stack.extend(out[edge.dst])
            elif target != origin:
                found[(origin, target)][id(edge)] = edge
    return {pair: list(edges.values()) for pair, edges in found.items()}


def module_view(graph: AutogradGraph) -> AutogradGraph:
    """Return ``graph`` with its ops collapsed into the modules that created them.

    A module node's shape and gradient are those of the gradient arriving at its output;
    ops that belong to no module (e.g. ``torch.flatten`` in a ``forward``, the loss's own
    ops) are seen through, so the gradient on an edge is the one entering the next module.
    Parameters stay as leaves of their module.
    """
    if graph.level == "module":
        return graph
    crossings = _crossings(graph)
    entering: dict[str, list[GraphEdge]] = defaultdict(list)
    for (_, target), edges in crossings.items():
        entering[target].extend(edges)
    members: dict[str, list[GraphNode]] = defaultdict(list)
    for node in graph.nodes:
        group = _group(node)
        if group is not None:
            members[group].append(node)
    nodes = []
    for group, group_nodes in members.items():
        if not group.startswith("module:"):
            nodes.append(group_nodes[0])
            continue
        shape, norm, nonfinite = _combine(entering[group]) if entering[group] else (None, None, 0)
        name = group[len("module:") :]
        ops = tuple(n.name for n in group_nodes)
        nodes.append(GraphNode(group, "module", name, name, shape, norm, nonfinite, ops=ops))
    edges = [
        GraphEdge(src, dst, *_combine(edge_list)) for (src, dst), edge_list in crossings.items()
    ]
    return AutogradGraph(nodes, edges, list(graph.no_grad_params), "module")
