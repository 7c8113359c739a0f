"""The first step's files: JSON written at once, drawings made later from those files."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from gradsight.autograd.attribution import ModuleAttribution
from gradsight.autograd.trace import BackwardTrace, trace_backward
from gradsight.cli import ExitCode, main
from gradsight.reports import graph_render
from gradsight.reports.graph_files import draw_missing, write_first_step
from gradsight.train.events import Observer, TrainState

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz not installed")


class AttentionBlock(nn.Module):
    """Self-attention with a residual connection and a classifier: not the article's CNN."""

    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, num_heads=2, batch_first=True)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x + self.attn(x, x, x, need_weights=False)[0])
        return self.head(h.mean(dim=1))


@pytest.fixture(scope="module")
def trace() -> BackwardTrace:
    torch.manual_seed(0)
    model = AttentionBlock()
    with ModuleAttribution(model) as modules:
        loss = nn.functional.cross_entropy(model(torch.randn(4, 5, 8)), torch.tensor([0, 1, 2, 0]))
    return trace_backward(loss, model, modules, detail="full", saved=True)


NAMES = ["graph.svg", "graph-modules.svg"]


def test_first_step_without_drawing_writes_the_json_only(
    trace: BackwardTrace, tmp_path: Path
) -> None:
    written = write_first_step(tmp_path, trace, draw=False)
    assert [p.name for p in written] == ["graph.json", "trace.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["graph.json", "trace.json"]


@needs_dot
def test_drawings_from_the_files_equal_drawings_at_the_step(
    trace: BackwardTrace, tmp_path: Path
) -> None:
    at_step, later = tmp_path / "at_step", tmp_path / "later"
    at_step.mkdir(), later.mkdir()
    write_first_step(at_step, trace, draw=True)
    write_first_step(later, trace, draw=False)
    assert [p.name for p in draw_missing(later)] == NAMES
    for name in NAMES:  # the JSON round trip keeps every label, norm and step number
        assert (later / name).read_bytes() == (at_step / name).read_bytes()
    assert b"#0" in (later / "graph.svg").read_bytes()  # numbered by backward step
    assert draw_missing(later) == []  # drawn already: left alone


def test_without_graphviz_the_dot_sources_are_written(
    trace: BackwardTrace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_first_step(tmp_path, trace, draw=False)
    monkeypatch.setattr(graph_render.shutil, "which", lambda name: None)
    with pytest.warns(RuntimeWarning, match="Graphviz"):
        written = draw_missing(tmp_path)
    assert [p.name for p in written] == ["graph.dot", "graph-modules.dot"]
    assert "digraph" in (tmp_path / "graph.dot").read_text()
    assert draw_missing(tmp_path) == []  # a DOT file counts as drawn


def test_a_folder_without_graph_json_gets_no_drawing(tmp_path: Path) -> None:
    (tmp_path / "trace.json").write_text('{"events": []}')
    assert draw_missing(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trace.json"]


class _Look(Observer):
    """What the run folder holds once the first step is done."""

    def __init__(self, run: Path) -> None:
        self.run = run
        self.seen: list[str] = []

    def on_after_step(self, state: TrainState) -> None:
        if state.step == 1:
            self.seen = sorted(p.name for p in self.run.iterdir())


@needs_dot
def test_gradsight_train_draws_the_graph_after_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gradsight.cli.train as cli_train

    run = tmp_path / "run"
    look, real = _Look(run), cli_train.fit
    monkeypatch.setattr(cli_train, "fit", lambda p, obs, start=None: real(p, [*obs, look], start))
    argv = ["train", "--data", "synthetic", "--epochs", "1", "--batch-size", "64", "--quiet"]
    code = main([*argv, "--out", str(run)], stdout=io.StringIO(), stderr=io.StringIO())
    assert code == ExitCode.OK
    assert "graph.json" in look.seen and "trace.json" in look.seen
    assert not set(NAMES) & set(look.seen)  # the first step did not wait for Graphviz
    assert all((run / name).read_text().lstrip().startswith("<?xml") for name in NAMES)
