"""Collapse an op-level autograd graph into its modules: loss -> fc -> pool -> relu -> conv1."""

from __future__ import annotations

from collections import defaultdict

from gradsight.autograd.graph import AutogradGraph, GraphEdge, GraphNode

__all__ = ["module_view"]


def _group(node: GraphNode) -> str | None:
    """The module-level node an op-level node belongs to; None for ops to see through."""
    if node.kind == "op":
        if not node.module:
            return None
        return f"module:{node.module}" + (f"#{node.call}" if node.call else "")
    return node.id  # the loss, parameters and other leaves stay themselves


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
    """Return ``graph`` with its ops collapsed into the modules (module calls) that made them.

    A module node's shape and gradient are those its entry op received: the gradient of
    the module's output, summed over every use. Ops that belong to no module (a
    ``torch.flatten`` in a ``forward``, the loss's own ops) are seen through, so each edge
    carries the gradient entering the next module; two op-level edges between the same
    modules stay two edges. A module called twice (a ResNet block's ``relu``) gives two
    nodes. Parameters stay as leaves of their module.
    """
    if graph.level == "module":
        return graph
    crossings = _crossings(graph)
    entry_ids = {e.dst for edges in crossings.values() for e in edges}
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
        entry = next((n for n in group_nodes if n.id in entry_ids), group_nodes[0])
        module = entry.module or ""
        name = module + (f" (call {entry.call + 1})" if entry.call else "")
        nodes.append(
            GraphNode(
                group, "module", name, module, entry.shape, entry.grad_norm, entry.nonfinite,
                ops=tuple(n.name for n in group_nodes), call=entry.call,
            )
        )  # fmt: skip
    edges = [
        GraphEdge(src, dst, e.shape, e.grad_norm, e.nonfinite)
        for (src, dst), edge_list in crossings.items()
        for e in edge_list
    ]
    return AutogradGraph(nodes, edges, list(graph.no_grad_params), "module")
