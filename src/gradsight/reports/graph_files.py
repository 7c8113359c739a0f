"""Write a captured graph to files: JSON, DOT, SVG or PNG, at op or module level."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from gradsight.autograd.graph import AutogradGraph
from gradsight.autograd.graph_modules import module_view
from gradsight.autograd.trace import BackwardTrace
from gradsight.errors import ConfigError
from gradsight.reports.graph_json import graph_from_dict, graph_to_json
from gradsight.reports.graph_render import FORMATS, GraphvizMissing, render, to_dot
from gradsight.reports.trace_render import steps_of, trace_to_json

__all__ = ["LEVELS", "draw_first_step", "draw_missing", "graph_bytes", "write_first_step"]

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


def write_first_step(run_dir: Path, trace: BackwardTrace, draw: bool = True) -> list[Path]:
    """Write the first step's ``graph.json`` and ``trace.json``, and with ``draw`` its drawings.

    The drawings (:func:`draw_first_step`) take Graphviz two layouts, tens of milliseconds:
    ``gradsight train`` and ``watch()`` pass ``draw=False`` so their first step does not wait
    for them, and draw them with the run's other reports (:func:`draw_missing`).
    """
    graph = trace.graph
    written = [run_dir / "graph.json", run_dir / "trace.json"]
    written[0].write_bytes(graph_bytes(graph, "json"))
    written[1].write_text(trace_to_json(trace), encoding="utf-8")
    return written + (draw_first_step(run_dir, graph, trace.steps()) if draw else [])


def draw_first_step(run_dir: Path, graph: AutogradGraph, steps: dict[str, int]) -> list[Path]:
    """Draw ``graph.svg`` (op level, each op numbered by its backward step from ``steps``) and
    ``graph-modules.svg``; without Graphviz, the DOT sources instead, with a warning."""
    written = []
    for level, stem in (("op", "graph"), ("module", "graph-modules")):
        try:
            path = run_dir / f"{stem}.svg"
            path.write_bytes(graph_bytes(graph, "svg", level=level, steps=steps))
        except GraphvizMissing as exc:
            path = run_dir / f"{stem}.dot"
            path.write_bytes(graph_bytes(graph, "dot", level=level, steps=steps))
            warnings.warn(f"{exc}; wrote {path.name} instead", RuntimeWarning, stacklevel=2)
        written.append(path)
    return written


def draw_missing(run_dir: Path) -> list[Path]:
    """Draw the first step's graph from the run folder's ``graph.json`` and ``trace.json``,
    unless it is drawn already (an SVG or a DOT file for either level); return what was
    written. A folder without ``graph.json`` gets nothing."""
    source = run_dir / "graph.json"
    drawn = [
        run_dir / f"{stem}.{ext}" for stem in ("graph", "graph-modules") for ext in ("svg", "dot")
    ]
    if not source.is_file() or any(path.is_file() for path in drawn):
        return []
    graph = graph_from_dict(json.loads(source.read_text(encoding="utf-8")))
    trace = run_dir / "trace.json"
    events = json.loads(trace.read_text(encoding="utf-8"))["events"] if trace.is_file() else []
    return draw_first_step(run_dir, graph, steps_of(events))
