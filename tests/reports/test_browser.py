"""``report.html`` in real headless Chromium: the step-through follows the trace, offline.

Skipped without Debian's ``chromium`` (``apt-get install chromium``) or the ``playwright``
package (the ``dev`` extra); Playwright drives the system browser, never a downloaded one.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from .conftest import EVIL

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
sync_api = pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).is_file():
    pytest.skip("chromium not installed (apt-get install chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def browser() -> Any:
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


def _open(browser: Any, report: Path) -> tuple[Any, list[str], list[str], list[str]]:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    requests: list[str] = []
    errors: list[str] = []
    dialogs: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(report.as_uri())
    return page, requests, errors, dialogs


def test_step_through_follows_the_trace(browser: Any, simple_run: Path, tmp_path: Path) -> None:
    report = simple_run / "report.html"
    events = json.loads((simple_run / "trace.json").read_text())["events"]
    page, requests, errors, dialogs = _open(browser, report)
    panel = page.locator("#panel")
    seen = []
    for k, event in enumerate(events):
        if k:
            page.click("#next")
        assert panel.get_attribute("data-node-id") == event["node_id"]
        current = page.locator("#op-graph g.node.gs-current title")
        assert current.count() == 1, event
        seen.append(current.text_content())
        assert page.text_content("#step-name") == event["name"]
        assert page.text_content("#step-explanation") == event["explanation"]
        assert page.text_content("#step-index") == f"step {k} of {len(events) - 1}"
        where = event["param"] or event["module"] or "(no module)"
        assert page.text_content("#step-where") == where
        produced = page.locator("#step-produced li").all_text_contents()
        assert len(produced) == len(event["produced"])
        for text, grad in zip(produced, event["produced"], strict=True):
            if grad is None:  # e.g. the conv's input image needs no gradient
                assert text.startswith("none")
            else:
                shape = "x".join(map(str, grad["shape"])) or "scalar"
                assert text.startswith(shape) and f"zeros={grad['zeros']}" in text
    assert page.is_disabled("#next") and not page.is_disabled("#prev")
    # ops are highlighted themselves; parameters (and folded TBackward0) by the op drawing them
    highlight = page.evaluate("JSON.parse(document.getElementById('gs-data').textContent)")
    assert seen == [highlight["highlight"][e["node_id"]] for e in events]
    folded = {"AccumulateGrad", "TBackward0"}
    assert all(
        s == e["node_id"] for s, e in zip(seen, events, strict=True) if e["name"] not in folded
    )
    assert len(set(seen)) >= 7  # ops of SimpleCNN, each lit in turn
    page.click("#prev")
    assert panel.get_attribute("data-node-id") == events[-2]["node_id"]
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert (tmp_path / "report.png").stat().st_size > 50_000
    page.click("#play")  # from the last step but one: plays the last step, then stops
    assert page.text_content("#play") == "pause"
    sync_api.expect(page.locator("#play")).to_have_text("play", timeout=5000)  # CSP: no eval
    assert panel.get_attribute("data-node-id") == events[-1]["node_id"]
    page.click("#play")  # from the end: starts over at step 0
    assert panel.get_attribute("data-node-id") == events[0]["node_id"]
    page.click("#play")  # pause
    assert page.text_content("#play") == "play"
    assert requests == [report.as_uri()], requests  # images are data: URIs, never fetched
    assert errors == [] and dialogs == []
    page.close()


_SHOWN = """() => {
  const box = document.getElementById("op-graph").getBoundingClientRect();
  const node = document.querySelector("#op-graph g.node.gs-current").getBoundingClientRect();
  return node.top >= box.top && node.bottom <= box.bottom
    && node.left >= box.left && node.right <= box.right;
}"""


def test_page_opens_at_its_top_and_steps_scroll_only_the_graph(
    browser: Any, simple_run: Path
) -> None:
    events = json.loads((simple_run / "trace.json").read_text())["events"]
    page, _, errors, _ = _open(browser, simple_run / "report.html")
    assert page.evaluate("[window.scrollX, window.scrollY]") == [0, 0]
    assert page.evaluate(_SHOWN)
    offsets = []
    for k in range(1, len(events)):
        # a click event without Playwright's scrolling of the button into view first
        page.dispatch_event("#next", "click")
        assert page.text_content("#step-index") == f"step {k} of {len(events) - 1}"
        assert page.evaluate("[window.scrollX, window.scrollY]") == [0, 0], k
        assert page.evaluate(_SHOWN), k  # the current node is in view inside the graph's box
        offsets.append(page.evaluate("document.getElementById('op-graph').scrollTop"))
    assert max(offsets) > 0  # the box scrolled to follow the trace
    assert errors == []
    page.close()


def test_hostile_names_run_no_script(browser: Any, evil_run: Path) -> None:
    page, requests, errors, dialogs = _open(browser, evil_run / "report.html")
    page.wait_for_timeout(300)
    assert dialogs == [] and errors == []
    assert requests == [(evil_run / "report.html").as_uri()]
    assert page.locator("img").count() == 2  # the two plots; no <img> from a module name
    steps = json.loads((evil_run / "trace.json").read_text())["events"]
    evil_step = next(k for k, e in enumerate(steps) if e["module"] == f"blocks.{EVIL}")
    for _ in range(evil_step):
        page.click("#next")
    assert page.text_content("#step-where") == f"blocks.{EVIL}"  # shown as text
    page.close()
