"""How gradsight's results show in Jupyter: traces and findings as tables, graphs as SVG.

The data models sit below the renderers and know nothing of HTML; loading this module gives
their classes the methods Jupyter looks for. ``import gradsight`` loads it with the first
name that makes such a result (``capture_graph``, ``trace_backward``, ``watch``,
``GradMonitor``...).
"""

from __future__ import annotations

from html import escape

from gradsight.autograd.trace import BackwardTrace
from gradsight.health.findings import Finding, Findings
from gradsight.reports import graph_render  # noqa: F401  (graphs: SVG, or how to get it)
from gradsight.reports.html import _table
from gradsight.reports.trace_render import _brief

__all__ = ["findings_html", "trace_html"]

#: Rows shown before a table is cut (the rest: ``trace.events`` / the findings list).
MAX_ROWS = 200

_STYLE = (
    "<style>.gradsight td,.gradsight th{text-align:left;vertical-align:top;padding:2px 6px}"
    ".gradsight td.num{text-align:right;font-family:monospace}</style>"
)


def _wrap(title: str, table: str, shown: int, total: int) -> str:
    more = f"<p>{total - shown} more not shown.</p>" if total > shown else ""
    return f'<div class="gradsight">{_STYLE}<p><b>{escape(title)}</b></p>{table}{more}</div>'


def trace_html(trace: BackwardTrace) -> str:
    """The trace as an HTML table: per node in execution order, where it is, the gradient
    it received and the ones it produced, its time and what it did."""
    rows = [
        (e.index, e.name, e.param or e.module or "", _brief(e.received[0] if e.received else None),
         ", ".join(_brief(s) for s in e.produced) or "-", f"{e.seconds * 1e6:.0f} us",
         e.explanation)
        for e in trace.events[:MAX_ROWS]
    ]  # fmt: skip
    title = f"backward pass: {len(trace.events)} nodes, {trace.seconds * 1e3:.1f} ms traced"
    header = ("step", "node", "module/param", "grad in", "grads out", "time", "what it did")
    return _wrap(title, _table(header, rows), len(rows), len(trace.events))


def findings_html(findings: list[Finding]) -> str:
    """The findings as an HTML table, in the order they came."""
    if not findings:
        return '<div class="gradsight"><p>gradsight: no findings.</p></div>'
    rows = [
        (f.step, f.epoch, f.severity, f.kind, f.module if f.module is not None else "",
         f.param or "", f.message)
        for f in findings[:MAX_ROWS]
    ]  # fmt: skip
    header = ("step", "epoch", "severity", "kind", "module", "parameter", "message")
    title = f"gradsight: {len(findings)} finding{'s' if len(findings) != 1 else ''}"
    return _wrap(title, _table(header, rows), len(rows), len(findings))


def _finding_html(finding: Finding) -> str:
    return findings_html([finding])


setattr(BackwardTrace, "_repr_html_", trace_html)  # noqa: B010
setattr(Findings, "_repr_html_", findings_html)  # noqa: B010
setattr(Finding, "_repr_html_", _finding_html)  # noqa: B010
