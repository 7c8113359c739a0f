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
Python node hooks, before it measures anything. "saved+graph" is the trace the run folder
keeps of the first step: ``trace_backward(..., saved=True)`` (each node's saved-tensor
metadata read before the backward frees it) and its ``.graph`` built. SimpleCNN's rounds take
~10 ms, so it runs 5x as many (300 by default) to narrow its quartiles. Goal: traced / plain
<= 1.2 (full and norm-only).

A second table times the first-step snapshot that ``gradsight train`` writes into every
run folder (``FirstStepSnapshot`` with ``write_first_step(..., draw=False)``), once per run:
the forward under ``ModuleAttribution``, the backward under ``BackwardTracer(saved=True)``,
the graph built, then graph.json and trace.json written, against a plain forward + backward;
and, apart, the drawings made from those files with the run's reports when training ends
(``draw_missing``: graph.svg and graph-modules.svg by Graphviz, the DOT sources without it);
milliseconds, medians.

    python benchmarks/bench_trace.py [--repeats 60] [--snapshot-repeats 10]
                                     [--device cpu|cuda] [--quick]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torchvision
from torch import nn

from gradsight.autograd.attribution import ModuleAttribution
from gradsight.autograd.trace import BackwardTracer, trace_backward
from gradsight.models import SimpleCNN
from gradsight.reports.graph_files import draw_missing, write_first_step


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


def _sync(x: torch.Tensor) -> None:
    if x.is_cuda:
        torch.cuda.synchronize()


def _loss(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    targets = torch.arange(x.shape[0], device=x.device) % 10
    return nn.functional.cross_entropy(model(x), targets)


def _snapshot(model: nn.Module, x: torch.Tensor, folder: Path) -> tuple[float, float, float]:
    """One first-step snapshot as the run folder takes it, then its drawings as the run's
    reports make them; (seconds traced, seconds writing the JSON, seconds drawing)."""
    _sync(x)
    start = time.perf_counter()
    model.zero_grad(set_to_none=True)
    with ModuleAttribution(model) as modules:
        loss = _loss(model, x)
    with BackwardTracer(loss, model, modules, saved=True) as tracer:
        loss.backward()
    trace = tracer.trace
    trace.graph  # noqa: B018 (built when read)
    _sync(x)
    traced = time.perf_counter()
    write_first_step(folder, trace, draw=False)
    written = time.perf_counter()
    for drawing in [*folder.glob("*.svg"), *folder.glob("*.dot")]:
        drawing.unlink()  # the previous round's: draw_missing leaves a drawn folder alone
    with warnings.catch_warnings():  # without Graphviz: DOT files, and a warning each time
        warnings.simplefilter("ignore", RuntimeWarning)
        began = time.perf_counter()
        draw_missing(folder)
    return traced - start, written - traced, time.perf_counter() - began


def _plain_step(model: nn.Module, x: torch.Tensor) -> float:
    _sync(x)
    start = time.perf_counter()
    model.zero_grad(set_to_none=True)
    _loss(model, x).backward()
    _sync(x)
    return time.perf_counter() - start


def snapshot_table(cases: dict[str, tuple[nn.Module, torch.Tensor, int]], rounds: int) -> None:
    """Print the run folder's first-step snapshot cost against a plain forward + backward."""
    print(f"run folder's first-step snapshot, {rounds} rounds, ms (medians):")
    print(f"{'model':<11}{'plain fwd+bwd':>14}{'traced (saved+graph)':>22}{'json written':>14}"
          f"{'at the step':>13}{'drawn at the end':>18}")  # fmt: skip
    for name, (model, x, _) in cases.items():
        plain: list[float] = []
        parts: list[tuple[float, float, float]] = []
        with tempfile.TemporaryDirectory() as folder:
            _snapshot(model, x, Path(folder))  # warm-up (and Graphviz's first start)
            for _ in range(rounds):
                plain.append(_plain_step(model, x))
                parts.append(_snapshot(model, x, Path(folder)))
        traced, written, drawn = (list(column) for column in zip(*parts, strict=True))
        at_step = [t + w for t, w in zip(traced, written, strict=True)]
        print(
            f"{name:<11}"
            + "".join(
                f"{statistics.median(v) * 1e3:>{width}.1f}"
                for v, width in ((plain, 14), (traced, 22), (written, 14), (at_step, 13),
                                 (drawn, 18))
            )
        )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=60, help="rounds per phase (resnet18)")
    parser.add_argument(
        "--snapshot-repeats", type=int, default=10, help="rounds of the run folder's snapshot"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--models", default="SimpleCNN,resnet18", help="which models, comma-separated"
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: SimpleCNN only, a few rounds"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.snapshot_repeats, args.models = 1, 1, "SimpleCNN"
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
    cases = {k: v for k, v in cases.items() if k in args.models.split(",")}
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {where}; "
          "ratio to the same round's plain backward: median (quartiles)")  # fmt: skip
    columns = {"plain again": "plain again", "hooks": "hooks only", "full": "full",
               "norm": "norm-only", "saved": "saved+graph"}  # fmt: skip
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
            "saved": lambda loss, m=model: trace_backward(loss, m, saved=True).graph,
        }
        plain: list[float] = []
        ratios: dict[str, list[float]] = {}
        for key in ("plain again", "hooks", "norm", "full", "saved"):  # one phase per variant
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
    snapshot_table({k: (m.to(device), x.to(device), r) for k, (m, x, r) in cases.items()},
                   args.snapshot_repeats)  # fmt: skip


if __name__ == "__main__":
    main()
