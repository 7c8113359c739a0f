"""Traced backward vs plain backward, in one process: the cost of watching backprop.

For SimpleCNN (64x3x32x32, the article's model) and torchvision's resnet18 (8x3x64x64),
each run does a fresh forward outside the timer, then times ``loss.backward()``,
``trace_backward(loss, model)`` (graph walk, hook registration, the traced backward with
full gradient statistics, hook removal, building the events) or the same with
``detail="norm"`` (L2 norm and NaN/Inf only). Each variant is measured in its own phase
against the plain backward: a round runs both once, in a random order, and divides one by
the other; the medians of these paired ratios (and their quartiles) are reported. Separate
phases matter on the CPU: a full trace's temporaries change how the allocator serves the
next backward, which skews a plain run that follows it. "plain again" is a phase of plain
vs plain: its ratio shows how noisy the machine is. "hooks only" walks the graph and puts
one do-nothing ``Node.register_hook`` on every node: the floor of any tracer built on
Python node hooks, before it measures anything. SimpleCNN's rounds take ~10 ms, so
it runs 5x as many (300 by default) to narrow its quartiles. Goal: traced / plain <= 1.2.

    python benchmarks/bench_trace.py [--repeats 60] [--device cpu|cuda]
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

from gradsight.autograd.trace import trace_backward
from gradsight.models import SimpleCNN


def _timed(model: nn.Module, x: torch.Tensor, backward: Callable[[torch.Tensor], object]) -> float:
    model.zero_grad(set_to_none=True)
    loss = nn.functional.cross_entropy(model(x), torch.arange(x.shape[0], device=x.device) % 10)
    if x.is_cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    backward(loss)
    if x.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def _hooks_only(loss: torch.Tensor) -> None:
    """A backward with a do-nothing post-hook on every node, registered and removed."""
    seen: set[object] = set()
    stack = [loss.grad_fn]
    handles = []
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        stack.extend(nxt for nxt, _ in node.next_functions)
        handles.append(node.register_hook(lambda grad_inputs, grad_outputs: None))
    loss.backward()
    for handle in handles:
        handle.remove()


def _quartiles(values: list[float]) -> str:
    q1, q2, q3 = statistics.quantiles(values, n=4)
    return f"{q2:.3f} ({q1:.2f}-{q3:.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=60, help="rounds per phase (resnet18)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    cases = {  # model, input, rounds per phase
        "SimpleCNN": (SimpleCNN(3, 10, 32), torch.randn(64, 3, 32, 32), 5 * args.repeats),
        "resnet18": (
            torchvision.models.resnet18(num_classes=10),
            torch.randn(8, 3, 64, 64),
            args.repeats,
        ),
    }
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {where}; "
          "ratio to the same round's plain backward: median (quartiles)")  # fmt: skip
    columns = {"plain again": "plain again", "hooks": "hooks only", "full": "full",
               "norm": "norm-only"}  # fmt: skip
    print(f"{'model':<11}{'rounds':>7}{'plain ms':>9}"
          + "".join(f"{title:>19}" for title in columns.values()))  # fmt: skip
    shuffler = random.Random(0)
    for name, (model, x, rounds) in cases.items():
        model, x = model.to(device), x.to(device)
        variants: dict[str, Callable[[torch.Tensor], object]] = {
            "plain": lambda loss: loss.backward(),
            "plain again": lambda loss: loss.backward(),
            "hooks": _hooks_only,
            "full": lambda loss, m=model: trace_backward(loss, m),
            "norm": lambda loss, m=model: trace_backward(loss, m, detail="norm"),
        }
        plain: list[float] = []
        ratios: dict[str, list[float]] = {}
        for key in ("plain again", "hooks", "norm", "full"):  # one phase per variant
            pair = {"plain": variants["plain"], key: variants[key]}
            for fn in pair.values():  # warm-up
                _timed(model, x, fn)
            ratios[key] = []
            for _ in range(rounds):
                order = list(pair)
                shuffler.shuffle(order)
                times = {k: _timed(model, x, pair[k]) for k in order}
                plain.append(times["plain"])
                ratios[key].append(times[key] / times["plain"])
        row = f"{name:<11}{rounds:>7}{statistics.median(plain) * 1e3:>9.2f}"
        row += "".join(f"{_quartiles(ratios[k]):>19}" for k in columns)
        verdict = ", ".join(
            f"{label} {'met' if statistics.median(ratios[k]) <= 1.2 else 'NOT met'}"
            for label, k in (("full", "full"), ("norm", "norm"))
        )
        print(f"{row}  goal <= 1.2: {verdict}")


if __name__ == "__main__":
    main()
