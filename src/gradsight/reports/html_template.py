"""The fixed parts of ``report.html``: its stylesheet, its one inline script and the page frame.

The script reads the run's data from ``<script type="application/json" id="gs-data">`` and
writes text only through ``textContent``; the page's Content-Security-Policy allows exactly
this script (by its SHA-256), inline styles and ``data:`` images, and nothing else.
"""

from __future__ import annotations

import base64
import hashlib

__all__ = ["CSS", "PAGE", "SCRIPT", "csp"]

CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1400px; padding: 1em 2em;
       color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 2px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.missing { color: #a33; font-style: italic; }
.cols { display: flex; gap: 2em; flex-wrap: wrap; align-items: flex-start; }
img.plot { max-width: 100%; border: 1px solid #eee; }
.graph { overflow: auto; border: 1px solid #eee; max-height: 80vh; }
.graph svg { height: auto; max-width: none; }
#stepper { display: flex; gap: 1.5em; align-items: flex-start; }
#stepper .graph { flex: 1 1 60%; }
#panel { flex: 0 0 36%; position: sticky; top: 0.5em; background: #fafafa; border: 1px solid #ddd;
         padding: 0.5em 1em; }
#panel .name { font-weight: bold; font-size: 1.1em; }
#panel .explanation { margin: 0.5em 0; }
#controls button { font-size: 1em; margin-right: 0.3em; }
g.node.gs-done > path, g.node.gs-done > polygon { stroke: #999; }
g.node.gs-current > path, g.node.gs-current > polygon, g.node.gs-current > ellipse {
  stroke: #ff7f0e; stroke-width: 5px; fill: #ffe7a8; }
tr.sev-error td { color: #b00; font-weight: bold; } tr.sev-warning td { color: #a60; }
"""

SCRIPT = """
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("gs-data").textContent);
  const events = data.trace ? data.trace.events : [];
  const panel = document.getElementById("panel");
  if (!panel || events.length === 0) { return; }
  const nodes = new Map();
  document.querySelectorAll("#op-graph g.node").forEach(function (g) {
    const title = g.querySelector("title");
    if (title) { nodes.set(title.textContent.trim(), g); }
  });
  const drawn = function (id) { return data.highlight[id] || id; };
  const el = function (id) { return document.getElementById(id); };
  const box = el("op-graph");
  // how far to scroll so that [start, end] shows in [view, view + size], as block: "nearest"
  const nearest = function (start, end, view, size) {
    if (start < view) { return start - view; }
    if (end > view + size) { return Math.min(start - view, end - view - size); }
    return 0;
  };
  // Scroll the graph's own box, never the page: scrollIntoView also scrolls the window, and
  // the page opened at the step-through instead of at its top.
  const reveal = function (g) {
    const outer = box.getBoundingClientRect();
    const inner = g.getBoundingClientRect();
    box.scrollBy(
      nearest(inner.left, inner.right, outer.left + box.clientLeft, box.clientWidth),
      nearest(inner.top, inner.bottom, outer.top + box.clientTop, box.clientHeight));
  };
  const fmt = function (x) { return x === null ? "n/a" : Number(x).toPrecision(4); };
  const grad = function (g) {
    if (g === null) { return "none (no gradient needed here)"; }
    const shape = g.shape.length ? g.shape.join("x") : "scalar";
    let text = shape + "  |g|=" + fmt(g.norm) + "  max|g|=" + fmt(g.max_abs) + "  zeros=" + g.zeros;
    if (g.nonfinite) { text += "  NaN/Inf=" + g.nonfinite; }
    return text;
  };
  const fill = function (list, grads) {
    list.replaceChildren();
    grads.forEach(function (g) {
      const li = document.createElement("li");
      li.textContent = grad(g);
      list.appendChild(li);
    });
  };
  let index = 0;
  let timer = null;
  const show = function (k) {
    index = Math.max(0, Math.min(events.length - 1, k));
    const ev = events[index];
    nodes.forEach(function (g) { g.classList.remove("gs-current", "gs-done"); });
    events.slice(0, index).forEach(function (e) {
      const g = nodes.get(drawn(e.node_id));
      if (g) { g.classList.add("gs-done"); }
    });
    const g = nodes.get(drawn(ev.node_id));
    if (g) {
      g.classList.add("gs-current");
      reveal(g);
    }
    panel.dataset.nodeId = ev.node_id;
    panel.dataset.drawnId = g ? drawn(ev.node_id) : "";
    el("step-index").textContent = "step " + ev.index + " of " + (events.length - 1);
    el("step-name").textContent = ev.name;
    el("step-where").textContent = ev.param || ev.module || "(no module)";
    const shown = drawn(ev.node_id);
    el("step-node").textContent = ev.node_id + (!g ? " (not drawn in the graph)"
      : shown === ev.node_id ? "" : " (drawn folded into " + shown + ")");
    el("step-explanation").textContent = ev.explanation;
    el("step-time").textContent = (ev.seconds * 1e6).toFixed(0) + " us";
    fill(el("step-received"), ev.received);
    fill(el("step-produced"), ev.produced);
    el("prev").disabled = index === 0;
    el("next").disabled = index === events.length - 1;
  };
  const stop = function () {
    if (timer !== null) { clearInterval(timer); timer = null; }
    el("play").textContent = "play";
  };
  el("prev").addEventListener("click", function () { stop(); show(index - 1); });
  el("next").addEventListener("click", function () { stop(); show(index + 1); });
  el("play").addEventListener("click", function () {
    if (timer !== null) { stop(); return; }
    if (index === events.length - 1) { show(0); }
    el("play").textContent = "pause";
    timer = setInterval(function () {
      if (index >= events.length - 1) { stop(); } else { show(index + 1); }
    }, 800);
  });
  show(0);
})();
"""


def csp(script: str = SCRIPT) -> str:
    """Return the page's Content-Security-Policy: no network, only this inline script."""
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    return (
        "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
        f"script-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'"
    )


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="referrer" content="no-referrer">
<title>{title}</title>
<style>{css}</style>
</head>
<body>
{body}
<script type="application/json" id="gs-data">{data}</script>
<script>{script}</script>
</body>
</html>
"""
