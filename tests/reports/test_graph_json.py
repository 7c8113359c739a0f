"""``graph_from_dict`` rebuilds exactly the graph that ``graph.json`` holds."""

from __future__ import annotations

import json
from pathlib import Path

from gradsight.autograd.graph_modules import module_view
from gradsight.reports.graph_json import graph_from_dict, graph_to_dict


def test_graph_json_round_trips(simple_run: Path) -> None:
    data = json.loads((simple_run / "graph.json").read_text())
    graph = graph_from_dict(data)
    assert graph_to_dict(graph) == data
    conv = next(n for n in graph.nodes if n.name == "ConvolutionBackward0")
    assert conv.module == "conv1" and conv.shape == (64, 16, 16, 16) and conv.saved
    modules = graph_to_dict(module_view(graph))  # the module view works on the rebuilt graph
    assert {n["name"] for n in modules["nodes"] if n["kind"] == "module"} >= {"conv1", "fc"}
