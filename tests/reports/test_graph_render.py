"""DOT, JSON and Graphviz output of captured graphs: structure and exact fields."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import torch
from torch import nn

from gradsight.autograd.attribution import ModuleAttribution
from gradsight.autograd.capture import capture_backward
from gradsight.autograd.graph import AutogradGraph
from gradsight.autograd.graph_modules import module_view
from gradsight.errors import ConfigError
from gradsight.models import SimpleCNN
from gradsight.reports import graph_render
from gradsight.reports.graph_files import graph_bytes
from gradsight.reports.graph_json import graph_to_dict
from gradsight.reports.graph_render import GraphvizMissing, norm_band, to_dot


@pytest.fixture(scope="module")
def graph() -> AutogradGraph:
    torch.manual_seed(0)
    model = SimpleCNN(3, 10, 32)
    model.fc.bias.requires_grad_(False)  # one frozen parameter to draw apart
    with ModuleAttribution(model) as tracker:
        logits = model(torch.randn(4, 3, 32, 32))
    return capture_backward(nn.functional.cross_entropy(logits, torch.arange(4)), model, tracker)


def _edges(dot: str) -> list[tuple[str, str]]:
    return re.findall(r'^\s+"([^"]+)" -> "([^"]+)"', dot, flags=re.M)


def test_json_schema_is_exact(graph: AutogradGraph) -> None:
    data = json.loads(graph_bytes(graph, "json"))
    assert set(data) == {"level", "nodes", "edges", "no_grad_params"}
    for node in data["nodes"]:
        assert {"id", "kind", "name", "module", "shape", "grad_norm"} <= set(node)
        assert node["kind"] in {"op", "param", "input", "loss"}
    for edge in data["edges"]:
        assert set(edge) == {"src", "dst", "shape", "grad_norm", "nonfinite"}
    assert data["no_grad_params"] == [{"name": "fc.bias", "reason": "frozen"}]
    weight = next(n for n in data["nodes"] if n["name"] == "conv1.weight")
    assert weight["kind"] == "param" and weight["module"] == "conv1"
    assert weight["shape"] == [16, 3, 3, 3] and weight["grad_norm"] > 0
    ids = {n["id"] for n in data["nodes"]}
    assert all(e["src"] in ids and e["dst"] in ids for e in data["edges"])


def test_module_level_json(graph: AutogradGraph) -> None:
    data = graph_to_dict(module_view(graph))
    kinds = {n["name"]: n["kind"] for n in data["nodes"]}
    assert kinds == {
        "loss": "loss", "fc": "module", "fc.weight": "param", "pool": "module", "relu": "module",
        "conv1": "module", "conv1.weight": "param", "conv1.bias": "param",
    }  # fmt: skip


def test_dot_backward_direction_and_folding(graph: AutogradGraph) -> None:
    dot = to_dot(graph)
    edges = _edges(dot)
    assert edges[0] == ("loss", "n0")  # gradients flow away from the loss
    names = dict(re.findall(r'^\s+"(n\d+)" \[label="([^\\"]+)', dot, flags=re.M))
    assert "AccumulateGrad" not in dot and "TBackward0" not in names.values()
    assert "+ fc.weight [10, 4096] grad" in dot and "+ conv1.weight [16, 3, 3, 3] grad" in dot
    assert "fc.bias\\nfrozen: requires_grad=False" in dot
    unfolded = to_dot(graph, fold_params=False)
    assert len(_edges(unfolded)) == len(graph.edges) and "TBackward0" in unfolded


def test_dot_forward_direction_reverses_every_edge(graph: AutogradGraph) -> None:
    back, fwd = _edges(to_dot(graph)), _edges(to_dot(graph, direction="forward"))
    assert fwd == [(b, a) for a, b in back]
    with pytest.raises(ValueError, match="direction"):
        to_dot(graph, direction="sideways")


def test_edge_colour_and_width_follow_log10_norm() -> None:
    assert [norm_band(x) for x in (1e-9, 1e-5, 1e-3, 0.5, 50.0, 1e5)] == [0, 1, 2, 3, 4, 5]
    assert norm_band(None) is None and norm_band(float("nan")) is None
    assert norm_band(0.0) == 0


def test_quotes_and_backslashes_are_escaped() -> None:
    assert graph_render._quote('a"b\\c\nd') == '"a\\"b\\\\c\\nd"'


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_svg_and_png_render(graph: AutogradGraph) -> None:
    svg = graph_bytes(graph, "svg", level="module")
    assert svg.lstrip().startswith(b"<?xml") and b"conv1" in svg
    png = graph_bytes(graph, "png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_graphviz_is_one_line_and_dot_json_still_work(
    graph: AutogradGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(graph_render.shutil, "which", lambda name: None)
    with pytest.raises(GraphvizMissing, match="apt-get install graphviz") as exc:
        graph_bytes(graph, "svg")
    assert "\n" not in str(exc.value)
    assert graph_bytes(graph, "dot").startswith(b"digraph")
    assert json.loads(graph_bytes(graph, "json"))["level"] == "op"


def test_bad_format_and_level(graph: AutogradGraph) -> None:
    with pytest.raises(ConfigError, match=r"invalid graph format 'gif'\. Valid formats: svg, png"):
        graph_bytes(graph, "gif")
    with pytest.raises(ConfigError, match="invalid graph level 'layer'"):
        graph_bytes(graph, "dot", level="layer")


def test_jupyter_display(graph: AutogradGraph, monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("dot") is not None:
        bundle = graph._repr_mimebundle_()
        assert bundle["image/svg+xml"].lstrip().startswith("<?xml")
    monkeypatch.setattr(graph_render.shutil, "which", lambda name: None)
    bundle = graph._repr_mimebundle_()  # no Graphviz: say how to install it
    assert set(bundle) == {"text/plain", "text/html"}
    first, hint = bundle["text/plain"].split("\n")
    assert first == "AutogradGraph(12 nodes, 11 edges, op)"
    assert "apt-get install graphviz" in hint and "brew install graphviz" in hint
    assert "apt-get install graphviz" in bundle["text/html"]
