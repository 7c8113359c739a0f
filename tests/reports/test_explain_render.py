"""The explain renderers: same sections and figures in the terminal and in Markdown."""

from __future__ import annotations

import dataclasses
import io
import re

import pytest
from rich.console import Console

from gradsight.explain import Comparison, ExplainConfig, Explanation, explain
from gradsight.reports.explain_render import (
    SECTION_TITLES,
    render_markdown,
    render_terminal,
    verdict,
)


@pytest.fixture(scope="module")
def explanation() -> Explanation:
    return explain(ExplainConfig(batch_size=2, seed=5))


def _terminal(e: Explanation) -> str:
    out = io.StringIO()
    Console(file=out, width=120).print(render_terminal(e))
    return out.getvalue()


def _break_fc_weight(e: Explanation) -> Explanation:
    """Return ``e`` with fc.weight.grad's comparison replaced by a failing one."""
    steps = list(e.layers.backward)
    i = next(i for i, s in enumerate(steps) if s.name == "fc.weight.grad")
    bad = Comparison("backward fc.weight.grad", 0.25, 0.5, 1e-10)
    steps[i] = dataclasses.replace(steps[i], comparison=bad)
    return dataclasses.replace(e, layers=dataclasses.replace(e.layers, backward=tuple(steps)))


def test_terminal_shows_every_section_shape_and_figure(explanation: Explanation) -> None:
    text = _terminal(explanation)
    positions = [text.index(title) for title in SECTION_TITLES]
    assert positions == sorted(positions)
    for step in explanation.layers.backward:
        shape = "[" + ", ".join(map(str, step.shape)) + "]"
        assert f"{step.name}  {shape}  {step.rule.title}" in text
        assert step.rule.symbols in text
    c = explanation.layers.backward[-1].comparison
    assert f"{c.max_abs_diff:.1e} (rel {c.max_rel_diff:.1e}): matches" in text
    assert "fc.weight.grad  [10, 3136]" in text and "[2, 16, 14, 14]" in text
    assert text.count("matches") >= len(explanation.comparisons())
    assert "MISMATCH" not in text
    assert text.rstrip().endswith("All 27 comparisons with PyTorch match.")


def test_markdown_structure(explanation: Explanation) -> None:
    md = render_markdown(explanation)
    headings = re.findall(r"^## (.+)$", md, flags=re.M)
    assert headings == [*SECTION_TITLES, "Result"]
    assert md.startswith("# gradsight explain\n")
    steps = re.findall(r"^### `([^`]+)` (\[[\d, ]+\]):", md, flags=re.M)
    assert steps == [
        (s.name, "[" + ", ".join(map(str, s.shape)) + "]") for s in explanation.layers.backward
    ]
    tables = [line for line in md.splitlines() if line.startswith("| ")]
    assert len(tables) == (1 + 7) + (1 + 4) + (1 + 4)  # header + rows, three tables
    assert all(line.count(" | ") == tables[0].count(" | ") for line in tables[:8])
    assert "| `conv1` | `Conv2d(1->16, 3x3, stride 1, padding 1)` | [2, 16, 28, 28] |" in md
    assert "\\|grad\\| 1 pass" in md  # pipes inside table cells are escaped
    assert md.endswith("**All 27 comparisons with PyTorch match.**\n")


def test_a_failed_comparison_is_shown_as_mismatch(explanation: Explanation) -> None:
    broken = _break_fc_weight(explanation)
    assert not broken.ok
    line = verdict(broken)
    assert line == "1 of 27 checks FAILED: backward fc.weight.grad (rel 5.0e-01 > 1e-10)."
    text = _terminal(broken)
    assert "2.5e-01 (rel 5.0e-01): MISMATCH" in text and text.count("MISMATCH") == 1
    md = render_markdown(broken)
    assert "2.5e-01 (rel 5.0e-01): **MISMATCH**" in md and f"**{line}**" in md
