"""Graph capture time vs torchviz's ``make_dot``, and Graphviz layout time, in one process.

For SimpleCNN (the article's 4x3x32x32 batch) and torchvision's resnet18 (2x3x64x64), a
fresh forward builds the graph before each timed call; only the walk is timed (no layout):
gradsight's ``capture_graph`` (structure, shapes, saved-tensor metadata) vs
``torchviz.make_dot`` (which builds its Graphviz source in the same pass). Calls are
interleaved in a random order each round and medians compared. Goal: capture no slower
than torchviz (ratio <= 1.0). The ``dot`` layout time of our SVG is printed separately.

    python benchmarks/bench_graph.py [--repeats 31]
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import time
from collections.abc import Callable

import torch
import torchvision
from torch import nn

from gradsight.autograd.capture import capture_graph
from gradsight.models import SimpleCNN
from gradsight.reports.graph_render import render, to_dot


def _loss(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(model(x), torch.zeros(x.shape[0], dtype=torch.long))


def _time(fn: Callable[[torch.Tensor], object], model: nn.Module, x: torch.Tensor) -> float:
    loss = _loss(model, x)  # a fresh graph for every call, built outside the timer
    start = time.perf_counter()
    fn(loss)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=31)
    args = parser.parse_args()
    from torchviz import make_dot

    torch.manual_seed(0)
    cases = {
        "SimpleCNN": (SimpleCNN(3, 10, 32), torch.randn(4, 3, 32, 32)),
        "resnet18": (torchvision.models.resnet18(num_classes=10), torch.randn(2, 3, 64, 64)),
    }
    print(f"torch {torch.__version__}, median of {args.repeats} interleaved calls, ms")
    print(
        f"{'model':<11}{'nodes':>7}{'gradsight':>11}{'torchviz':>10}{'ratio':>8}{'dot layout':>12}"
    )
    shuffler = random.Random(0)
    for name, (model, x) in cases.items():
        tools: dict[str, Callable[[torch.Tensor], object]] = {
            "gradsight": lambda loss, m=model: capture_graph(loss, m),
            "torchviz": lambda loss, m=model: make_dot(loss, params=dict(m.named_parameters())),
        }
        times: dict[str, list[float]] = {k: [] for k in tools}
        for _ in range(3):  # warm-up
            for fn in tools.values():
                _time(fn, model, x)
        for _ in range(args.repeats):
            order = list(tools)
            shuffler.shuffle(order)
            for key in order:
                times[key].append(_time(tools[key], model, x))
        ours, theirs = (statistics.median(times[k]) * 1e3 for k in ("gradsight", "torchviz"))
        graph = capture_graph(_loss(model, x), model)
        layout = "n/a (no dot)"
        if shutil.which("dot"):
            dot = to_dot(graph)
            start = time.perf_counter()
            render(dot, "svg")
            layout = f"{(time.perf_counter() - start) * 1e3:.0f}"
        print(
            f"{name:<11}{len(graph.nodes):>7}{ours:>11.2f}{theirs:>10.2f}"
            f"{ours / theirs:>8.2f}{layout:>12}"
        )


if __name__ == "__main__":
    main()
