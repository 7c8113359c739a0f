"""``report.html``: one self-contained page that explains a run folder.

Everything is inline (CSS, one script, PNG plots as ``data:`` URIs, the Graphviz SVGs), the
page's Content-Security-Policy forbids any network request, and every string taken from the
run (module, parameter and op names, config values, messages) is HTML-escaped, or embedded as
JSON with ``<``, ``>`` and ``&`` escaped and written by the script through ``textContent``.
A missing or unreadable file turns its section into a line that says so.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

from gradsight.reports.checks_render import checks_section
from gradsight.reports.graph_files import draw_missing, graph_bytes
from gradsight.reports.graph_json import graph_from_dict
from gradsight.reports.graph_render import GraphvizMissing
from gradsight.reports.html_template import CSS, PAGE, SCRIPT, csp
from gradsight.reports.plots import (
    curve_data,
    draw_curves,
    draw_gradflow,
    gradflow_data,
    write_plots,
)
from gradsight.reports.trace_render import steps_of

__all__ = ["build_report", "highlight_map", "json_for_script", "write_report", "write_run_reports"]

_esc = html.escape


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON.parse rejects NaN/Infinity
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def json_for_script(data: Any) -> str:
    """Return ``data`` as JSON safe inside ``<script type="application/json">`` (NaN -> null)."""
    text = json.dumps(_finite(data), allow_nan=False, default=str)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _missing(text: str) -> str:
    return f'<p class="missing">{_esc(text)}</p>'


def _read_json(path: Path) -> tuple[Any, str | None]:
    try:
        return json.loads(path.read_text(encoding="utf-8")), None
    except FileNotFoundError:
        return None, f"{path.name} not found in the run folder"
    except (OSError, ValueError) as exc:
        return None, f"{path.name} could not be read: {exc}"


def _read_jsonl(path: Path) -> tuple[list[dict[str, Any]], str | None]:
    """Read a JSON-lines file, skipping a torn last line (a crashed run may leave one)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return [], f"{path.name} not found in the run folder"
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records, None


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f'<td class="num">{value:.6g}</td>'
    if isinstance(value, (dict, list)):
        value = json.dumps(value)
    return f"<td>{_esc('' if value is None else str(value))}</td>"


def _kv_table(data: dict[str, Any]) -> str:
    rows = "".join(f"<tr><th>{_esc(str(k))}</th>{_cell(v)}</tr>" for k, v in data.items())
    return f"<table>{rows}</table>"


def _table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _json_block(run_dir: Path, name: str, title: str) -> str:
    data, note = _read_json(run_dir / name)
    if note or not isinstance(data, dict):
        return f"<div><h3>{title}</h3>{_missing(note or f'{name} is not a JSON object')}</div>"
    if name != "summary.json":
        return f"<div><h3>{title}</h3>{_kv_table(data)}</div>"
    final = data.get("final") or {}
    rest = {k: v for k, v in data.items() if k != "final"}
    return f"<div><h3>{title}</h3>{_kv_table(rest)}<h3>Final metrics</h3>{_kv_table(final)}</div>"


def _summary_section(run_dir: Path) -> str:
    blocks = (
        _json_block(run_dir, "summary.json", "Summary"),
        _json_block(run_dir, "config.json", "Config"),
        _json_block(run_dir, "env.json", "Environment"),
    )
    return '<h2 id="summary">Run summary</h2><div class="cols">' + "".join(blocks) + "</div>"


def _png(run_dir: Path, name: str, draw: Callable[[], bytes], alt: str) -> str:
    """Embed ``run_dir/name`` if it is newer than ``metrics.jsonl``, else what ``draw`` makes."""
    path, metrics = run_dir / name, run_dir / "metrics.jsonl"
    if path.is_file() and path.stat().st_mtime >= metrics.stat().st_mtime:
        png = path.read_bytes()  # written by gradsight train from these very metrics
    else:
        png = draw()
    encoded = base64.b64encode(png).decode("ascii")
    return f'<img class="plot" alt="{_esc(alt)}" src="data:image/png;base64,{encoded}">'


def _drawn(drawer: Callable[[Any, IO[bytes]], Any], data: Any) -> Callable[[], bytes]:
    def draw() -> bytes:
        buffer = io.BytesIO()
        drawer(data, buffer)
        return buffer.getvalue()

    return draw


def _plots_section(run_dir: Path) -> str:
    metrics, note = _read_jsonl(run_dir / "metrics.jsonl")
    head = '<h2 id="plots">Training curves and gradient flow</h2>'
    if note:
        return head + _missing(note)
    if not metrics:
        return head + _missing("metrics.jsonl holds no records yet")
    curves = _drawn(draw_curves, curve_data(metrics))
    gradflow = _drawn(draw_gradflow, gradflow_data(metrics))
    return (
        head
        + _png(run_dir, "curves.png", curves, "loss and accuracy curves")
        + _png(run_dir, "gradflow.png", gradflow, "per-layer gradient norms")
    )


_PROLOG = re.compile(r"\A(?:\s*<\?xml[^>]*\?>|\s*<!DOCTYPE[^>]*>|\s*<!--.*?-->)*", re.S)


def _inline_svg(
    run_dir: Path, level: str, graph: Any, steps: dict[str, int]
) -> tuple[str | None, str | None]:
    """Return the run's SVG at ``level`` without its XML prolog, or a note why there is none.

    Without the SVG file (a run trained without Graphviz), it is drawn from ``graph.json``
    when Graphviz is installed now.
    """
    svg = run_dir / ("graph.svg" if level == "op" else "graph-modules.svg")
    if svg.is_file():
        text = _PROLOG.sub("", svg.read_text(encoding="utf-8"))
        return (
            (text, None) if text.lstrip().startswith("<svg") else (None, f"{svg.name} is not SVG")
        )
    if not isinstance(graph, dict):
        return None, f"neither {svg.name} nor graph.json in the run folder"
    try:
        drawn = graph_bytes(graph_from_dict(graph), "svg", level=level, steps=steps)
    except GraphvizMissing:
        return None, f"{svg.name} not found, and Graphviz is missing to draw graph.json"
    except (KeyError, TypeError, ValueError) as exc:
        return None, f"{svg.name} not found, and graph.json could not be drawn: {exc!r}"
    return _PROLOG.sub("", drawn.decode("utf-8")), None


_PANEL = """
<div id="panel" data-node-id="">
<div id="controls"><button id="prev" type="button">previous</button><button id="next"
 type="button">next</button><button id="play" type="button">play</button>
 <span id="step-index"></span></div>
<p><span class="name" id="step-name"></span> &middot; <span id="step-where"></span>
 &middot; node <code id="step-node"></code> &middot; <span id="step-time"></span></p>
<p class="explanation" id="step-explanation"></p>
<div>received:</div><ul id="step-received"></ul>
<div>produced:</div><ul id="step-produced"></ul>
</div>
"""


_TITLE = re.compile(r'<g id="[^"]*" class="node">\s*<title>([^<]*)</title>')


def highlight_map(svg: str | None, graph: Any) -> dict[str, str]:
    """Map each node id of ``graph.json`` to the id of the SVG node that draws it.

    A node not drawn on its own (a parameter, or a ``TBackward0`` folded into the op that
    uses it) maps to its nearest drawn ancestor in the gradient direction.
    """
    drawn = {html.unescape(t) for t in _TITLE.findall(svg or "")}
    if not isinstance(graph, dict):
        return {n: n for n in drawn}
    parent = {e["dst"]: e["src"] for e in graph.get("edges", [])}
    found: dict[str, str] = {}
    for node in graph.get("nodes", []):
        current: str | None = node["id"]
        for _ in range(len(parent) + 1):  # bounded: a malformed file may hold a cycle
            if current is None or current in drawn:
                break
            current = parent.get(current)
        if current in drawn:
            found[node["id"]] = current
    return found


def _stepper_section(svg: str | None, note: str | None, trace_note: str | None) -> str:
    head = '<h2 id="backward">Backward pass, step by step (op level)</h2>'
    graph = f'<div class="graph" id="op-graph">{svg}</div>' if svg else _missing(note or "")
    if trace_note:
        return head + _missing(trace_note) + graph
    intro = (
        "<p>The first training step's <code>loss.backward()</code>, node by node in the order "
        "the autograd engine ran it. The current node is outlined in the graph.</p>"
    )
    return head + intro + f'<div id="stepper">{graph}{_PANEL}</div>'


def _module_graph_section(svg: str | None, note: str | None) -> str:
    body = f'<div class="graph" id="module-graph">{svg}</div>' if svg else _missing(note or "")
    return '<h2 id="modules">Module-level graph</h2>' + body


def _events_section(run_dir: Path) -> str:
    head = '<h2 id="events">Gradient monitor events</h2>'
    events, _ = _read_jsonl(run_dir / "events.jsonl")
    if not events:  # EventLog creates the file with its first finding
        return head + "<p>No findings: the monitor saw nothing wrong.</p>"
    columns = ("step", "epoch", "severity", "kind", "module", "param", "phase", "op", "message")
    header = "".join(f"<th>{c}</th>" for c in columns)
    rows = "".join(
        f'<tr class="sev-{_esc(str(e.get("severity")))}">'
        + "".join(_cell(e.get(c)) for c in columns)
        + "</tr>"
        for e in events
    )
    return head + f"<table><tr>{header}</tr>{rows}</table>"


def _checkpoints_section(run_dir: Path) -> str:
    head = '<h2 id="checkpoints">Checkpoints</h2>'
    folder = run_dir / "checkpoints"
    files = sorted(folder.glob("*.pt")) if folder.is_dir() else []
    if not files:
        return head + _missing("no checkpoints/ folder with .pt files in the run folder")
    rows = ((p.name, p.stat().st_size) for p in files)
    return head + _table(("file", "bytes"), rows)


def build_report(run_dir: Path) -> str:
    """Return ``report.html`` for ``run_dir`` as text (works on crashed or partial runs too)."""
    run_dir = Path(run_dir)
    trace, trace_note = _read_json(run_dir / "trace.json")
    graph, _ = _read_json(run_dir / "graph.json")
    if trace is not None and not isinstance(trace.get("events"), list):
        trace, trace_note = None, "trace.json has no events list"
    summary, _ = _read_json(run_dir / "summary.json")
    status = summary.get("status") if isinstance(summary, dict) else "no summary.json"
    title = f"gradsight report: {run_dir.resolve().name}"
    events = trace["events"] if trace is not None else []
    steps = steps_of(events)
    op_svg, op_note = _inline_svg(run_dir, "op", graph, steps)
    body = "".join(
        [
            f"<h1>{_esc(title)}</h1><p>status: <b>{_esc(str(status))}</b></p>",
            _summary_section(run_dir),
            checks_section(run_dir),  # "" unless gradsight check wrote checks.json here
            _plots_section(run_dir),
            _stepper_section(op_svg, op_note, trace_note),
            _module_graph_section(*_inline_svg(run_dir, "module", graph, steps)),
            _events_section(run_dir),
            _checkpoints_section(run_dir),
        ]
    )
    data = {"trace": trace, "highlight": highlight_map(op_svg, graph)}
    return PAGE.format(
        csp=_esc(csp(), quote=False), title=_esc(title), css=CSS, body=body,
        data=json_for_script(data), script=SCRIPT,
    )  # fmt: skip


def write_report(run_dir: Path, out: Path | None = None) -> Path:
    """Write the report of ``run_dir`` to ``out`` (default ``run_dir/report.html``)."""
    path = Path(out) if out is not None else Path(run_dir) / "report.html"
    path.write_text(build_report(run_dir), encoding="utf-8")
    return path


def write_run_reports(run_dir: Path) -> None:
    """Write ``graph.svg``/``graph-modules.svg`` (when the first step's graph is not drawn
    yet), ``curves.png``, ``gradflow.png`` and ``report.html`` into a run folder at the end of
    a run, whatever its status; a failure only warns (the run itself is recorded)."""
    writers: tuple[tuple[str, Callable[[Path], object]], ...] = (
        ("the graph drawings", draw_missing),
        ("plots", write_plots),
        ("report.html", write_report),
    )
    for name, write in writers:
        try:
            write(run_dir)
        except Exception as exc:  # a drawing bug must not fail or hide the run
            warnings.warn(f"could not write {name} into {run_dir}: {exc!r}", RuntimeWarning, 3)
