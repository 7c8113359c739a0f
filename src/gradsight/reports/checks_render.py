"""Render ``gradsight check`` results: the lr range test as PNG, the checks as an HTML section.

Both read the plain data of ``checks.json`` (``CheckReport.to_dict()``), so a run folder's
report shows the checks without importing the code that ran them.
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["checks_section", "draw_lr_range", "lr_range_figure", "value_text"]

#: checks.json status -> the report's row class (shared with the events table's colours).
_ROW = {"fail": "sev-error", "warn": "sev-warning", "pass": "sev-pass"}


def value_text(value: Any) -> str:
    """A check's value as a short text: 3 significant digits, ``-`` for None."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _finite(values: list[Any]) -> list[float]:
    return [float(v) if isinstance(v, (int, float)) else math.nan for v in values]


def lr_range_figure(sweep: dict[str, Any]) -> Figure:
    """Return loss against lr (log scale), with the suggested, configured and blow-up lrs.

    Args:
        sweep: the ``details`` of the ``lr_range`` check.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.0, 4.0), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    lrs, losses, smoothed = sweep["lrs"], _finite(sweep["losses"]), _finite(sweep["smoothed"])
    ax.plot(lrs, losses, color="0.75", label="loss per step")
    ax.plot(lrs[: len(smoothed)], smoothed, color="tab:blue", label="smoothed")
    marks = (("suggested_lr", "tab:green", "-", "suggested"),
             ("configured_lr", "black", "--", "configured"),
             ("blowup_lr", "tab:red", ":", "blow-up"))  # fmt: skip
    for key, color, style, label in marks:
        if isinstance(sweep.get(key), (int, float)):
            ax.axvline(sweep[key], color=color, linestyle=style, label=f"{label} {sweep[key]:.2g}")
    ax.set_xscale("log")
    finite = [v for v in losses if math.isfinite(v)]
    if finite:  # a blown-up last step would squash the curve
        ax.set_ylim(min(finite) * 0.95, min(max(finite), 2.5 * finite[0]) * 1.05)
    ax.set(title=f"lr range test ({sweep.get('optimizer', '?')})", xlabel="learning rate",
           ylabel="training loss")  # fmt: skip
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")
    return fig


def draw_lr_range(sweep: dict[str, Any], path: Path | IO[bytes]) -> Path | IO[bytes]:
    """Write :func:`lr_range_figure` of ``sweep`` to ``path`` as PNG and return ``path``."""
    lr_range_figure(sweep).savefig(path, format="png")
    return path


def _row(check: dict[str, Any]) -> str:
    cells = [check.get("name"), check.get("status"), value_text(check.get("value")),
             check.get("message"), check.get("fix")]  # fmt: skip
    row = _ROW.get(str(check.get("status")), "")
    tds = "".join(f"<td>{html.escape('' if c is None else str(c))}</td>" for c in cells)
    return f'<tr class="{row}">{tds}</tr>'


def checks_section(run_dir: Path) -> str:
    """Return the report's "Pre-training checks" section, or ``""`` without ``checks.json``."""
    path = Path(run_dir) / "checks.json"
    head = '<h2 id="checks">Pre-training checks (gradsight check)</h2>'
    if not path.is_file():
        return ""
    try:
        checks = json.loads(path.read_text(encoding="utf-8"))["checks"]
        rows = "".join(_row(c) for c in checks)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return (
            head + f'<p class="missing">checks.json could not be read: {html.escape(repr(exc))}</p>'
        )
    header = "".join(f"<th>{h}</th>" for h in ("check", "status", "value", "message", "fix"))
    failed = sum(c.get("status") == "fail" for c in checks)
    verdict = f"<p>{len(checks)} checks, {failed} failed.</p>"
    png = Path(run_dir) / "lr_range.png"
    image = ""
    if png.is_file():
        encoded = base64.b64encode(png.read_bytes()).decode("ascii")
        image = f'<img class="plot" alt="lr range test" src="data:image/png;base64,{encoded}">'
    return head + verdict + f"<table><tr>{header}</tr>{rows}</table>" + image
