"""Traced backward vs plain backward, in one process: the cost of watching backprop.

For SimpleCNN (64x3x32x32, the article's model) and torchvision's resnet18 (8x3x64x64),
each run does a fresh forward outside the timer, then times ``loss.backward()``,
``trace_backward(loss, model)`` (graph walk, hook registration, the traced backward with
full gradient statistics, hook removal) or the same with ``detail="norm"`` (L2 norm and
NaN/Inf only). Runs alternate in a random order; medians over --repeats runs are compared.
Goal: traced / plain <= 1.2.

    python benchmarks/bench_trace.py [--repeats 60]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

import torch
import torchvision
from torch import nn

from gradsight.models import SimpleCNN
from gradsight.observers.trace import trace_backward


def _timed(model: nn.Module, x: torch.Tensor, backward: Callable[[torch.Tensor], object]) -> float:
    model.zero_grad(set_to_none=True)
    loss = nn.functional.cross_entropy(model(x), torch.arange(x.shape[0]) % 10)
    start = time.perf_counter()
    backward(loss)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=60)
    args = parser.parse_args()
    torch.manual_seed(0)
    cases = {
        "SimpleCNN": (SimpleCNN(3, 10, 32), torch.randn(64, 3, 32, 32)),
        "resnet18": (torchvision.models.resnet18(num_classes=10), torch.randn(8, 3, 64, 64)),
    }
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU, median of "
          f"{args.repeats} interleaved runs, ms")  # fmt: skip
    header = f"{'model':<11}{'plain':>9}{'full':>9}{'ratio':>8}{'norm-only':>11}{'ratio':>8}"
    print(f"{header}  goal <= 1.2")
    shuffler = random.Random(0)
    for name, (model, x) in cases.items():
        variants: dict[str, Callable[[torch.Tensor], object]] = {
            "plain": lambda loss: loss.backward(),
            "traced": lambda loss, m=model: trace_backward(loss, m),
            "traced-norm": lambda loss, m=model: trace_backward(loss, m, detail="norm"),
        }
        times: dict[str, list[float]] = {k: [] for k in variants}
        for fn in variants.values():  # warm-up
            _timed(model, x, fn)
        for _ in range(args.repeats):
            order = list(variants)
            shuffler.shuffle(order)
            for key in order:
                times[key].append(_timed(model, x, variants[key]))
        plain, full, light = (
            statistics.median(times[k]) * 1e3 for k in ("plain", "traced", "traced-norm")
        )
        verdict = ", ".join(
            f"{label} {'met' if t / plain <= 1.2 else 'NOT met'}"
            for label, t in (("full", full), ("norm", light))
        )
        print(
            f"{name:<11}{plain:>9.2f}{full:>9.2f}{full / plain:>8.2f}{light:>11.2f}"
            f"{light / plain:>8.2f}  {verdict}"
        )


if __name__ == "__main__":
    main()
