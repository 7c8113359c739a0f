"""Jupyter display of traces and findings, on models written here (attention, a residual MLP)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import torch
from torch import Tensor, nn

import gradsight
from gradsight.autograd.attribution import ModuleAttribution
from gradsight.health.findings import Finding, Findings
from gradsight.reports import notebook


class Attention(nn.Module):
    def __init__(self, d: int = 8) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(d, 2, batch_first=True)
        self.head = nn.Linear(d, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.attn(x, x, x)[0].mean(1))


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Sequential(nn.Linear(4, 4), nn.Tanh())
        self.out = nn.Linear(4, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(x + (self.inner(x) - 2).log())  # tanh - 2 < 0: NaN


def _rows(html: str) -> int:
    return html.count("<tr>") - 1  # minus the header


def test_trace_shows_as_a_table_of_every_node() -> None:
    model = Attention()
    with ModuleAttribution(model) as modules:
        loss = model(torch.randn(2, 3, 8)).sum()
    trace = gradsight.trace_backward(loss, model, modules)
    html = trace._repr_html_()  # type: ignore[attr-defined]
    assert _rows(html) == len(trace.events)
    assert f"backward pass: {len(trace.events)} nodes" in html
    assert "AccumulateGrad" in html and "attn.in_proj_weight" in html
    assert re.search(r"<td>\d+x\d+ \|g\|=", html)  # the gradient sizes, not just names


def test_long_trace_is_cut_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    model = Attention()
    trace = gradsight.trace_backward(model(torch.randn(2, 3, 8)).sum(), model)
    monkeypatch.setattr(notebook, "MAX_ROWS", 3)
    html = notebook.trace_html(trace)
    assert _rows(html) == 3 and f"{len(trace.events) - 3} more not shown" in html


def test_findings_show_as_a_table() -> None:
    model = Residual()

    def loss_fn(model: nn.Module, batch: Tensor) -> Tensor:
        return model(batch).sum()

    with gradsight.GradMonitor(model, loss_fn=loss_fn) as monitor:
        batch = -torch.ones(3, 4)
        loss_fn(model, batch).backward()
        monitor.check(0, batch=batch)
    assert isinstance(monitor.findings, Findings) and len(monitor.findings.errors()) == 1
    html = monitor.findings._repr_html_()  # type: ignore[attr-defined]
    assert "gradsight: 1 finding" in html and _rows(html) == 1
    assert (
        "in Residual.forward, op log" in html
        and "<td>error</td>" in html
        and "<td>nonfinite</td>" in html
    )
    assert "op log" in monitor.findings[0]._repr_html_()  # type: ignore[attr-defined]


def test_findings_are_escaped_and_empty_says_so() -> None:
    found = Findings([Finding(3, 0, "no_grad", "warning", "x <b>detached</b> & gone", "a<b")])
    html = notebook.findings_html(found)
    assert "&lt;b&gt;detached&lt;/b&gt; &amp; gone" in html and "<b>detached" not in html
    assert "no findings" in notebook.findings_html(Findings())


def test_top_level_names_load_the_display() -> None:
    code = (
        "import gradsight\n"
        "from gradsight.health.findings import Findings\n"
        "assert not hasattr(Findings, '_repr_html_')\n"
        "gradsight.watch\n"
        "print(hasattr(Findings, '_repr_html_'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
