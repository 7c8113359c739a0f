"""Write a captured graph to files: JSON, DOT, SVG or PNG, at op or module level."""

from __future__ import annotations

import warnings
from pathlib import Path

from gradsight.errors import ConfigError
from gradsight.observers.graph import AutogradGraph
from gradsight.observers.graph_modules import module_view
from gradsight.reports.graph_json import graph_to_json
from gradsight.reports.graph_render import FORMATS, GraphvizMissing, render, to_dot

__all__ = ["LEVELS", "graph_bytes", "write_run_graph"]

LEVELS = ("op", "module")


def graph_bytes(
    graph: AutogradGraph,
    fmt: str,
    *,
    level: str = "op",
    direction: str = "backward",
    fold_params: bool = True,
) -> bytes:
    """Return ``graph`` rendered as ``fmt`` (svg, png, dot or json) at ``level``.

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
    dot = to_dot(view, direction=direction, fold_params=fold_params)
    return dot.encode("utf-8") if fmt == "dot" else render(dot, fmt)


def write_run_graph(run_dir: Path, graph: AutogradGraph) -> list[Path]:
    """Write ``graph.json``, ``graph.svg`` and ``graph-modules.svg`` into a run folder.

    Without Graphviz, the DOT sources are written instead of the SVGs, with a warning.
    """
    written = [run_dir / "graph.json"]
    written[0].write_bytes(graph_bytes(graph, "json"))
    for level, stem in (("op", "graph"), ("module", "graph-modules")):
        try:
            path = run_dir / f"{stem}.svg"
            path.write_bytes(graph_bytes(graph, "svg", level=level))
        except GraphvizMissing as exc:
            path = run_dir / f"{stem}.dot"
            path.write_bytes(graph_bytes(graph, "dot", level=level))
            warnings.warn(f"{exc}; wrote {path.name} instead", RuntimeWarning, stacklevel=2)
        written.append(path)
    return written
