"""Render an :class:`AutogradGraph` as Graphviz DOT, and DOT as SVG or PNG with ``dot``.

Edges point the way gradients flow (loss -> parameters) unless ``direction="forward"``.
Edge colour and width encode log10 of the gradient's L2 norm on a fixed scale, so two
pictures can be compared; a legend explains it.
"""

from __future__ import annotations

import html
import math
import shutil
import subprocess
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from gradsight.autograd.graph import AutogradGraph, GraphEdge, GraphNode
from gradsight.errors import GradsightError

__all__ = [
    "FORMATS", "NORM_SCALE", "GraphvizMissing", "mimebundle", "norm_band", "render", "to_dot",
]  # fmt: skip

FORMATS = ("svg", "png", "dot", "json")

#: Bands of log10(||grad||): (upper bound, colour, legend text). Fixed, to compare pictures.
NORM_SCALE = (
    (-6.0, "#3b4cc0", "< 1e-6 (vanishing)"),
    (-4.0, "#6788ee", "1e-6 .. 1e-4"),
    (-2.0, "#9abbff", "1e-4 .. 1e-2"),
    (0.0, "#5aae61", "1e-2 .. 1"),
    (2.0, "#f7a35c", "1 .. 1e2"),
    (math.inf, "#d7301f", "> 1e2 (large)"),
)
_NAN_COLOUR, _NONE_COLOUR = "#c51b7d", "#b0b0b0"


class GraphvizMissing(GradsightError):
    """Graphviz's ``dot`` program is not installed."""


def norm_band(norm: float | None) -> int | None:
    """Return the index in :data:`NORM_SCALE` of a gradient norm; None for no/NaN gradient."""
    if norm is None or not math.isfinite(norm):
        return None
    log = math.log10(norm) if norm > 0 else -math.inf
    return next(i for i, (upper, _, _) in enumerate(NORM_SCALE) if log < upper)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _shape(shape: tuple[int, ...] | None) -> str:
    if shape is None:
        return "[?]"
    return "[" + ", ".join(map(str, shape)) + "]" if shape else "scalar"


def _norm(norm: float | None, nonfinite: int = 0) -> str:
    if nonfinite:
        return f"{nonfinite} NaN/Inf"
    return "no grad" if norm is None else f"{norm:.2e}"


#: Ops that only reshape or cast a parameter on its way in (fc.weight's TBackward0): folded too.
_PARAM_VIEWS = (
    "TBackward", "ViewBackward", "TransposeBackward", "PermuteBackward", "ExpandBackward",
    "UnsqueezeBackward", "SqueezeBackward", "AliasBackward", "ToCopyBackward",
)  # fmt: skip


@dataclass(frozen=True)
class _Fold:
    """Parameters (and their T/View boilerplate) drawn inside the op that uses them."""

    hidden: frozenset[str]
    extra: dict[str, list[str]]  # op id -> label lines


def _folds(graph: AutogradGraph) -> _Fold:
    """Fold each parameter into its op, and ops left with no other child into theirs."""
    nodes = {n.id: n for n in graph.nodes}
    parents: dict[str, list[str]] = defaultdict(list)
    children: dict[str, list[str]] = defaultdict(list)
    for e in graph.edges:
        parents[e.dst].append(e.src)
        children[e.src].append(e.dst)
    hidden: set[str] = set()
    extra: dict[str, list[str]] = defaultdict(list)
    for p in (n for n in graph.nodes if n.kind == "param" and len(parents[n.id]) == 1):
        host = parents[p.id][0]
        # climb through view ops that only feed this parameter (fc.weight's TBackward0)
        while (
            nodes[host].name.startswith(_PARAM_VIEWS)
            and len(parents[host]) == 1
            and len(children[host]) == 1
        ):
            hidden.add(host)
            host = parents[host][0]
        hidden.add(p.id)
        extra[host].append(f"+ {p.name} {_shape(p.shape)} grad {_norm(p.grad_norm, p.nonfinite)}")
    return _Fold(frozenset(hidden), extra)


def _node_line(n: GraphNode, extra: list[str], step: int | None = None) -> str:
    if n.kind == "loss":
        label = f"loss {_shape(n.shape)}"
        style = 'shape=doubleoctagon, style=filled, fillcolor="#fde0dd"'
    elif n.kind in ("param", "input"):
        label = f"{n.name}\n{_shape(n.shape)}\ngrad {_norm(n.grad_norm, n.nonfinite)}"
        style = 'shape=ellipse, style=filled, fillcolor="#deebf7"'
    else:
        title = n.name if n.kind == "op" else f"{n.name} ({', '.join(n.ops)})"
        title = f"#{step} {title}" if step is not None else title
        where = f"{n.module} · " if n.kind == "op" and n.module else ""
        label = f"{title}\n{where}out {_shape(n.shape)}\ngrad in {_norm(n.grad_norm, n.nonfinite)}"
        fill = "#fff7bc" if n.kind == "module" else "#f0f0f0"
        style = f'shape=box, style="rounded,filled", fillcolor="{fill}"'
    label = "\n".join([label, *extra])
    return f"  {_quote(n.id)} [label={_quote(label)}, {style}];"


def _edge_line(e: GraphEdge, forward: bool, labels: bool) -> str:
    band = norm_band(e.grad_norm)
    if e.nonfinite:
        colour, width, dash = _NAN_COLOUR, 3.0, ", style=bold"
    elif band is None:
        colour, width, dash = _NONE_COLOUR, 1.0, ", style=dashed"
    else:
        colour, width, dash = NORM_SCALE[band][1], 1.0 + 0.7 * band, ""
    src, dst = (e.dst, e.src) if forward else (e.src, e.dst)
    label = f", label={_quote(_shape(e.shape) + chr(10) + _norm(e.grad_norm, e.nonfinite))}"
    return (
        f"  {_quote(src)} -> {_quote(dst)} [color={_quote(colour)}, penwidth={width:.1f}"
        f"{dash}{label if labels else ''}, fontsize=9];"
    )


def _legend() -> list[str]:
    rows = "".join(
        f'<TR><TD BGCOLOR="{colour}" WIDTH="18"> </TD>'
        f'<TD ALIGN="LEFT">{html.escape(text)}</TD></TR>'
        for _, colour, text in (*NORM_SCALE, (0, _NAN_COLOUR, "NaN/Inf"), (0, _NONE_COLOUR, "none"))
    )
    table = (
        '<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="2">'
        f'<TR><TD COLSPAN="2"><B>||grad|| on edges</B></TD></TR>{rows}</TABLE>'
    )
    return [f"  legend [shape=plaintext, fontsize=9, label=<{table}>];"]


def _no_grad_cluster(graph: AutogradGraph) -> list[str]:
    if not graph.no_grad_params:
        return []
    lines = [
        '  subgraph cluster_nograd { label="no gradient"; fontsize=10; style=dashed; color=grey;'
    ]
    for i, p in enumerate(graph.no_grad_params):
        why = (
            "frozen: requires_grad=False"
            if p.reason == "frozen"
            else "detached: not reachable from the loss"
        )
        lines.append(
            f"    nograd{i} [shape=ellipse, style=dashed, color=grey, fontcolor=grey30, "
            f"label={_quote(p.name + chr(10) + why)}];"
        )
    lines.append("  }")
    return lines


def to_dot(
    graph: AutogradGraph,
    *,
    direction: str = "backward",
    fold_params: bool = True,
    edge_labels: bool = True,
    legend: bool = True,
    steps: dict[str, int] | None = None,
) -> str:
    """Return Graphviz DOT source for ``graph``.

    Args:
        graph: an op-level or module-level graph.
        direction: ``"backward"`` draws edges the way gradients flow (loss first);
            ``"forward"`` reverses them (inputs first, loss last).
        fold_params: draw parameters inside the op (or module) that uses them, with their
            gradient norm, instead of as separate AccumulateGrad leaves.
        edge_labels: write each edge's gradient shape and norm on it.
        legend: add the colour legend.
        steps: node id -> step of the backward pass (from a trace), shown as ``#k``.

    Raises:
        ValueError: an unknown ``direction``.
    """
    if direction not in ("backward", "forward"):
        raise ValueError(f"direction must be 'backward' or 'forward', not {direction!r}")
    fold = _folds(graph) if fold_params else _Fold(frozenset(), {})
    lines = [
        "digraph autograd {",
        '  graph [rankdir=TB, fontname="Helvetica", nodesep=0.3, ranksep=0.35];',
        '  node [fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica"];',
    ]
    for n in graph.nodes:
        if n.id not in fold.hidden:
            lines.append(_node_line(n, fold.extra.get(n.id, []), (steps or {}).get(n.id)))
    for e in graph.edges:
        if e.src not in fold.hidden and e.dst not in fold.hidden:
            lines.append(_edge_line(e, direction == "forward", edge_labels))
    lines += _no_grad_cluster(graph) + (_legend() if legend else []) + ["}"]
    return "\n".join(lines) + "\n"


def render(dot_source: str, fmt: str, *, timeout: float = 120.0) -> bytes:
    """Lay out ``dot_source`` with Graphviz and return the ``svg`` or ``png`` bytes.

    Raises:
        GraphvizMissing: ``dot`` is not on PATH.
        ValueError: ``fmt`` is not svg or png.
    """
    if fmt not in ("svg", "png"):
        raise ValueError(f"render() makes svg or png, not {fmt!r}")
    exe = shutil.which("dot")
    if exe is None:
        raise GraphvizMissing(
            "Graphviz's 'dot' program was not found, so SVG/PNG cannot be drawn; install it "
            "(Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz) or use "
            "--format dot or --format json"
        )
    proc = subprocess.run(
        [exe, f"-T{fmt}"], input=dot_source.encode("utf-8"), capture_output=True, timeout=timeout
    )
    if proc.returncode != 0:
        raise GradsightError(f"dot failed: {proc.stderr.decode('utf-8', 'replace').strip()}")
    return proc.stdout


_NO_DOT = (
    "the graph is drawn by Graphviz, which is not installed: apt-get install graphviz "
    "(Debian/Ubuntu), brew install graphviz (macOS) or conda install graphviz, then restart "
    "the kernel; meanwhile gradsight.reports.graph_render.to_dot(graph) gives the DOT text"
)


def mimebundle(graph: AutogradGraph, include: Any = None, exclude: Any = None) -> dict[str, str]:
    """Show ``graph`` in Jupyter: SVG when Graphviz is installed, else how to install it."""
    text = repr(graph)
    try:
        svg = render(to_dot(graph), "svg").decode("utf-8")
    except GraphvizMissing:
        hint = f"<p><code>{html.escape(text)}</code></p><p>{html.escape(_NO_DOT)}</p>"
        return {"text/html": hint, "text/plain": f"{text}\n{_NO_DOT}"}
    return {"image/svg+xml": svg, "text/plain": text}


# The graph's data model knows nothing of rendering (it sits below this module); Jupyter
# looks for this method on the class, which it finds once the renderer is loaded. The top
# level ``gradsight.capture_graph`` & co. load it.
setattr(AutogradGraph, "_repr_mimebundle_", mimebundle)  # noqa: B010
