from __future__ import annotations

import json
import re

import torch
from torch import nn

from gradsight.autograd.trace import BackwardTrace, trace_backward
from gradsight.models import SimpleCNN
from gradsight.reports.graph_render import to_dot
from gradsight.reports.trace_render import trace_text, trace_to_dict, trace_to_json


def _trace() -> BackwardTrace:
    torch.manual_seed(0)
    model = SimpleCNN(3, 10, 32)
    loss = nn.functional.cross_entropy(model(torch.randn(4, 3, 32, 32)), torch.arange(4))
    return trace_backward(loss, model)


def test_json_has_every_event_with_stats() -> None:
    trace = _trace()
    data = json.loads(trace_to_json(trace))
    assert set(data) == {"seconds", "events"}
    assert [e["index"] for e in data["events"]] == list(range(12))
    first = data["events"][0]
    assert set(first) == {
        "index", "node_id", "name", "module", "param", "received", "produced", "seconds",
        "explanation",
    }  # fmt: skip
    assert first["received"] == [
        {"shape": [], "norm": 1.0, "max_abs": 1.0, "zeros": 0, "nonfinite": 0}
    ]
    assert data == trace_to_dict(trace)


def test_text_two_lines_per_event_in_order() -> None:
    trace = _trace()
    lines = trace_text(trace).splitlines()
    assert len(lines) == 2 + 2 * len(trace.events)
    assert re.match(r"\s+0  NllLossBackward0\s", lines[2])
    assert "AccumulateGrad: stored into conv1.bias.grad" in lines[-1]
    assert lines[-2].split()[:3] == ["11", "AccumulateGrad", "conv1.bias"]


def test_graph_nodes_numbered_by_step() -> None:
    trace = _trace()
    dot = to_dot(trace.graph, steps=trace.steps())
    assert '"n0" [label="#0 NllLossBackward0' in dot
    assert re.search(r'label="#9 ConvolutionBackward0', dot)
