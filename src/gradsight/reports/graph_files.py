"""Write a captured graph to files: JSON, DOT, SVG or PNG, at op or module level."""

from __future__ import annotations

import warnings
from pathlib import Path

from gradsight.autograd.graph import AutogradGraph
from gradsight.autograd.graph_modules import module_view
from gradsight.autograd.trace import BackwardTrace
from gradsight.errors import ConfigError
from gradsight.reports.graph_json import graph_to_json
from gradsight.reports.graph_render import FORMATS, GraphvizMissing, render, to_dot
from gradsight.reports.trace_render import trace_to_json

__all__ = ["LEVELS", "graph_bytes", "write_first_step"]

LEVELS = ("op", "module")


def graph_bytes(
    graph: AutogradGraph,
    fmt: str,
    *,
    level: str = "op",
    direction: str = "backward",
    fold_params: bool = True,
    steps: dict[str, int] | None = None,
) -> bytes:
    """Return ``graph`` rendered as ``fmt`` (svg, png, dot or json) at ``level``.

    ``steps`` (node id -> backward step, from a trace) numbers the op-level nodes.

    Raises:
        ConfigError: an unknown format or level.
        GraphvizMissing: svg/png asked for and Graphviz is not installed.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"invalid graph format '{fmt}'. Valid formats: {', '.join(FORMATS)}")
    if level not in LEVELS:
        raise ConfigError(f"invalid graph level '{level}'. Valid levels: {', '.join(LEVELS)}")
    view = module_view(graph) if level == "module" else graph
    if fmt == "json":
        return graph_to_json(view).encode("utf-8")
    dot = to_dot(
        view, direction=direction, fold_params=fold_params, steps=steps if level == "op" else None
    )
    return dot.encode("utf-8") if fmt == "dot" else render(dot, fmt)


def write_first_step(run_dir: Path, trace: BackwardTrace) -> list[Path]:
    """Write the first step's ``graph.json``, ``graph.svg``, ``graph-modules.svg``, ``trace.json``.

    Op nodes in ``graph.svg`` carry their backward step number. Without Graphviz, the DOT
    sources are written instead of the SVGs, with a warning.
    """
    graph = trace.graph
    written = [run_dir / "graph.json", run_dir / "trace.json"]
    written[0].write_bytes(graph_bytes(graph, "json"))
    written[1].write_text(trace_to_json(trace), encoding="utf-8")
    for level, stem in (("op", "graph"), ("module", "graph-modules")):
        try:
            path = run_dir / f"{stem}.svg"
            path.write_bytes(graph_bytes(graph, "svg", level=level, steps=trace.steps()))
        except GraphvizMissing as exc:
            path = run_dir / f"{stem}.dot"
            path.write_bytes(graph_bytes(graph, "dot", level=level, steps=trace.steps()))
            warnings.warn(f"{exc}; wrote {path.name} instead", RuntimeWarning, stacklevel=2)
        written.append(path)
    return written
