"""Per-step cost of the gradient monitor vs a plain step, and vs detect_anomaly, in one run.

One "step" is zero_grad, forward, CrossEntropy, backward, SGD step on a 64-image batch. The
monitor runs as the training loop runs it (its before_forward / after_forward /
after_backward / before_step / after_step handlers, default settings: one fused norm and one
sync per step, per-layer checks every 20 steps, the forward sentinel every 200 steps).
"monitor/20" is the same with ``check_every=20`` (``--nonfinite-check-every 20``: the
NaN/Inf flag read every 20 steps, for GPUs; on the CPU a sync costs nothing, so it should
match "monitor"). ``torch.autograd.set_detect_anomaly(True)`` is measured in the same
process. Blocks of --steps steps (numbered from 180, so each holds step 199, when the
monitor measures update ratios, and step 200, a sentinel step) alternate in a random order.
Medians of per-step time are compared; the two rare steps' extra time is then spread over
the 200-step cycle they recur in ("amortized"). Goal: monitor / plain <= 1.03.

    python benchmarks/bench_monitor.py [--repeats 15] [--steps 40]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import torch
from torch import nn

from gradsight.config import TrainConfig
from gradsight.data import load_dataset
from gradsight.models import DeepCNN, SimpleCNN
from gradsight.observers.monitor import GradMonitor, MonitorConfig
from gradsight.train import TrainState, build_optimizer

FIRST = 180  # blocks run steps 180.. : 199 measures update ratios, 200 is a sentinel step


def _block(
    state: TrainState, batches: list[tuple[torch.Tensor, torch.Tensor]], mode: str
) -> list[float]:
    """Seconds of each step of one block."""
    model, opt = state.model, state.optimizer
    monitor = None
    if mode.startswith("monitor"):
        monitor = GradMonitor(model, MonitorConfig(check_every=20 if mode == "monitor/20" else 1))
    seconds = []
    with torch.autograd.set_detect_anomaly(mode == "detect_anomaly"):
        for i, (x, y) in enumerate(batches):
            start = time.perf_counter()
            state.step, state.inputs, state.targets = FIRST + i, x, y
            opt.zero_grad(set_to_none=True)
            if monitor:
                monitor.on_before_forward(state)
            state.loss = loss = nn.functional.cross_entropy(model(x), y)
            if monitor:
                monitor.on_after_forward(state)
            loss.backward()
            if monitor:
                monitor.on_after_backward(state)
                monitor.on_before_step(state)
            opt.step()
            state.step += 1
            if monitor:
                monitor.on_after_step(state)
            seconds.append(time.perf_counter() - start)
        if monitor:
            monitor.flush()
    return seconds


def _check_alone(model: nn.Module, calls: int = 500) -> float:
    """Seconds per ``GradMonitor.check`` on the gradients left by the last step: the
    monitor's own per-step work, free of the step-to-step noise of whole-step timings."""
    monitor = GradMonitor(model)
    for step in range(50):
        monitor.check(step)
    start = time.perf_counter()
    for step in range(calls):
        monitor.check(1000 + step * 20 + 1)  # not a per-layer check step: the common case
    return (time.perf_counter() - start) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    if args.steps < 21:
        parser.error("--steps must be >= 21: a block must reach steps 199 and 200")
    data = load_dataset("fashion-mnist-mini")
    gen = torch.Generator().manual_seed(0)
    batches = list(data.train.batches(64, shuffle=True, generator=gen))[: args.steps]
    config = TrainConfig()
    threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, {threads} threads, CPU, batch 64, median ms/step")
    print(f"over {args.repeats} interleaved blocks of {args.steps} steps")
    print(
        f"{'model':<10}{'plain':>8}{'monitor':>9}{'ratio':>7}{'monitor/20':>11}{'ratio':>7}"
        f"{'anomaly':>9}{'ratio':>7}"
    )
    shuffler = random.Random(0)
    for name, build in (("SimpleCNN", SimpleCNN), ("deep", DeepCNN)):
        torch.manual_seed(0)
        model: nn.Module = build(1, 10, 28)
        state = TrainState(
            config, data.info, model, build_optimizer(config, model), torch.device("cpu")
        )
        modes = ["plain", "monitor", "monitor/20", "detect_anomaly"]
        steps: dict[str, list[list[float]]] = {m: [] for m in modes}
        for mode in modes:
            _block(state, batches, mode)  # warm-up
        for _ in range(args.repeats):
            shuffler.shuffle(modes)
            for mode in modes:
                steps[mode].append(_block(state, batches, mode))
        med = {m: statistics.median(t for block in steps[m] for t in block) * 1e3 for m in modes}
        plain, mon, mon20, anomaly = (med[m] for m in ("plain", "monitor", "monitor/20",
                                                       "detect_anomaly"))  # fmt: skip
        row = f"{name:<10}{plain:>8.2f}{mon:>9.2f}{mon / plain:>7.3f}"
        row += f"{mon20:>11.2f}{mon20 / plain:>7.3f}"
        print(f"{row}{anomaly:>9.2f}{anomaly / plain:>7.2f}")
        extra = {  # the rare steps' time above a typical monitored step, median over blocks
            at: statistics.median(block[at - FIRST] for block in steps["monitor"]) * 1e3 - mon
            for at in (199, 200)
        }
        cycle = (200 * mon + 2 * extra[199] + extra[200]) / (200 * plain)
        print(
            f"{'':<10}update-ratio step +{extra[199]:.2f} ms (every 100), sentinel step "
            f"+{extra[200]:.2f} ms (every 200): amortized monitor / plain {cycle:.3f}"
        )
        alone = _check_alone(model) * 1e3
        share = alone / plain
        print(f"{'':<10}monitor.check() alone: {alone * 1e3:.0f} us/step = {share:.2%} of a step")
    print("goal: monitor / plain <= 1.03")


if __name__ == "__main__":
    main()
