"""``report.html``: self-contained, escaped, and complete on finished and crashed runs."""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import re
import shutil
from pathlib import Path

import pytest

from gradsight.cli import main
from gradsight.reports.html import build_report, json_for_script
from gradsight.reports.html_template import SCRIPT

from .conftest import EVIL, EVIL_SCRIPT


def _data(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="gs-data">(.*?)</script>', page, re.S)
    assert m is not None
    return json.loads(m.group(1))


def test_report_is_self_contained_with_strict_csp(simple_run: Path) -> None:
    page = (simple_run / "report.html").read_text()  # written by gradsight train
    metas = re.findall(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', page)
    assert len(metas) == 1
    (script,) = re.findall(r"<script>(.*?)</script>", page, re.S)  # the one inline script
    assert script == SCRIPT
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()
    # the whole policy: any source added to it (img-src https:, connect-src *) fails here
    assert html.unescape(metas[0]) == (
        "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
        f"script-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'"
    )
    # a <meta> policy governs only what follows it
    assert page.index("Content-Security-Policy") < min(page.index("<style>"), page.index("<script"))
    # no URL that a browser would fetch: only data: images, and no http(s) anywhere but SVG's
    # XML namespaces
    assert re.findall(r'src="([a-z]+):', page) == ["data", "data"]
    urls = set(re.findall(r"https?://[^\s\"'<>]+", page))
    assert urls <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}, urls
    assert "<link" not in page and "@import" not in page and "url(" not in page


def test_report_holds_every_section(simple_run: Path) -> None:
    page = (simple_run / "report.html").read_text()
    for section in ("summary", "plots", "backward", "modules", "events", "checkpoints"):
        assert f'<h2 id="{section}">' in page
    assert "ConvolutionBackward0" in page and "last.pt" in page and "completed" in page
    for png in ("curves.png", "gradflow.png"):  # the run's own plots, embedded as they are
        assert base64.b64encode((simple_run / png).read_bytes()).decode() in page
    trace = json.loads((simple_run / "trace.json").read_text())
    assert _data(page)["trace"] == trace
    # every traced node that graph.svg draws can be found by the script through its <title>
    svg = (simple_run / "graph.svg").read_text()
    titles = set(re.findall(r'<g id="node\d+" class="node">\s*<title>([^<]+)</title>', svg))
    highlight = _data(page)["highlight"]
    assert {e["node_id"] for e in trace["events"]} <= set(highlight)
    assert set(highlight.values()) <= titles
    by_name = {e["name"]: e["node_id"] for e in trace["events"]}
    assert highlight[by_name["TBackward0"]] == by_name["AddmmBackward0"]  # folded into fc's op
    params = {e["param"]: e["node_id"] for e in trace["events"] if e["param"]}
    assert highlight[params["conv1.weight"]] == by_name["ConvolutionBackward0"]
    assert "<?xml" not in page and "<!DOCTYPE svg" not in page


def test_names_from_the_model_are_escaped(evil_run: Path) -> None:
    page = (evil_run / "report.html").read_text()
    assert EVIL not in page and EVIL_SCRIPT not in page
    assert "<img src=x" not in page and "alert(2)</script>" not in page
    assert "onerror=alert(1)" in page  # the name is shown, in escaped form only
    assert page.count("<script") == 2  # the JSON block and the page's one script
    data = _data(page)  # the JSON keeps the names intact for textContent
    modules = {e["module"] for e in data["trace"]["events"]}
    assert f"blocks.{EVIL}" in modules and f"blocks.{EVIL_SCRIPT}" in modules


def test_json_for_script_cannot_close_its_tag() -> None:
    text = json_for_script({"a": "</script><!-- & -->"})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == {"a": "</script><!-- & -->"}
    assert json.loads(json_for_script({"n": [float("nan"), 1.0]})) == {"n": [None, 1.0]}


def test_crashed_run_folder_says_what_is_missing(simple_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "crashed"
    shutil.copytree(simple_run, run)
    for name in (
        "summary.json",
        "model.pt",
        "trace.json",
        "graph.svg",
        "graph.json",
        "report.html",
    ):
        (run / name).unlink()
    shutil.rmtree(run / "checkpoints")
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"kind": "step", "step": 1')  # torn last line of a killed process
    page = build_report(run)
    for note in ("summary.json not found", "trace.json not found",
                 "neither graph.svg nor graph.json", "no checkpoints/ folder"):  # fmt: skip
        assert note in page, note
    assert page.count("data:image/png;base64,") == 2  # the plots still come from metrics
    assert _data(page)["trace"] is None


def test_report_command(simple_run: Path, tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    target = tmp_path / "r.html"
    code = main(["report", str(simple_run), "--out", str(target)], stdout=out, stderr=err)
    assert code == 0, err.getvalue()
    assert f"wrote {target}" in out.getvalue()
    assert target.read_text() == build_report(simple_run)
    code = main(["report", str(tmp_path / "nope")], stdout=out, stderr=err)
    assert code == 2 and "is not a folder" in err.getvalue()


@pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz")
def test_graphs_are_drawn_from_graph_json_without_svg_files(
    simple_run: Path, tmp_path: Path
) -> None:
    run = tmp_path / "no-svg"
    shutil.copytree(simple_run, run)
    svgs = [(run / name).read_text() for name in ("graph.svg", "graph-modules.svg")]
    (run / "graph.svg").unlink()
    (run / "graph-modules.svg").unlink()  # as if trained without Graphviz
    page = build_report(run)
    for svg in svgs:  # Graphviz draws the same picture from graph.json and the trace's steps
        assert svg[svg.index("<svg") :] in page
    assert _data(page)["highlight"] == _data(build_report(simple_run))["highlight"]


def test_events_table_escapes_and_marks_severity(simple_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "events"
    shutil.copytree(simple_run, run)
    finding = {"step": 3, "epoch": 1, "kind": "nonfinite", "severity": "error", "module": EVIL,
               "param": None, "phase": "forward", "op": "Linear", "value": None,
               "message": f"NaN born in {EVIL}"}  # fmt: skip
    (run / "events.jsonl").write_text(json.dumps(finding) + "\n")
    page = build_report(run)
    events = page.split('<h2 id="events">', 1)[1].split("<h2", 1)[0]
    assert '<tr class="sev-error"><td>3</td><td>1</td><td>error</td><td>nonfinite</td>' in events
    assert EVIL not in page and f"NaN born in {html.escape(EVIL)}" in events
