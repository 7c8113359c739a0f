"""Per-step cost of the gradient monitor vs a plain step, and vs detect_anomaly, in one run.

One "step" is zero_grad, forward, CrossEntropy, backward, SGD step on a 64-image batch. The
monitor runs as the training loop runs it (its before_forward / after_forward /
after_backward / before_step / after_step handlers) at default settings: one fused norm and
one sync per step, per-layer checks every 20 steps, update ratios every 100, the forward
sentinel and a norm-only backward trace every 200 (and at step 0). "monitor/20" is the same
with ``check_every=20`` (``--nonfinite-check-every 20``: the NaN/Inf flag read every 20
steps, for GPUs; on the CPU a sync costs nothing, so it should match "monitor").
``torch.autograd.set_detect_anomaly(True)`` is measured in the same process. "watch" is a
user's own loop under ``gradsight.watch(model, loss_fn, run_dir)``: ``run.check(step,
batch)`` after backward and ``run.log`` every 20 steps, with the monitor's forward pre-hook on
the model, and a run folder (step 0 also replays and traces the first step for graph.json).

Every step runs all four variants on the same batch, in a random order, each on its own copy
of the model (same initial weights, so the same trajectory) with its own monitor that sees
every step number in turn, so the rare steps come at their real rates; a monitor's forward
pre-hook (it keeps the step's random state for the NaN replay) is on its own copy only, so
"plain" runs without it.
Reported: the median of the per-step paired ratios variant / plain (the typical step, with
quartiles), and the ratio of total times (every step, the rare ones included).
Goal: monitor / plain <= 1.03, and watch / plain <= 1.03.

On a GPU (``--device cuda``) each timed step ends with ``torch.cuda.synchronize()``.

Models: the article's SimpleCNN, the 6-conv DeepCNN, and torchvision's resnet18 (on the
28x28 images repeated to 3 channels).

    python benchmarks/bench_monitor.py [--steps 600] [--deep-steps 200] [--resnet-steps 100]
                                       [--models SimpleCNN,deep,resnet18] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import copy
import random
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torchvision
from torch import nn

from gradsight.config import TrainConfig
from gradsight.data import load_dataset
from gradsight.health.monitor import GradMonitor, MonitorConfig
from gradsight.models import DeepCNN, SimpleCNN
from gradsight.session import WatchedRun, watch
from gradsight.train import TrainState, build_optimizer

MODES = ("plain", "monitor", "monitor/20", "watch", "detect_anomaly")


def _loss_fn(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return nn.functional.cross_entropy(model(batch[0]), batch[1])


def _watched_step(state: TrainState, batch: tuple[torch.Tensor, torch.Tensor], step: int,
                  run: WatchedRun) -> None:  # fmt: skip
    """The step of a user's own loop under gradsight.watch."""
    state.optimizer.zero_grad(set_to_none=True)
    loss = _loss_fn(state.model, batch)
    loss.backward()
    if not run.check(step, batch):
        state.optimizer.step()
    if (step + 1) % 20 == 0:
        run.log(step, loss=loss.item())


def _step(
    state: TrainState, x: torch.Tensor, y: torch.Tensor, step: int, monitor: GradMonitor | None
) -> None:
    model, opt = state.model, state.optimizer
    state.step, state.inputs, state.targets = step, x, y
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


def _quartiles(values: list[float]) -> str:
    q1, q2, q3 = statistics.quantiles(values, n=4)
    return f"{q2:.3f} ({q1:.2f}-{q3:.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600, help="SimpleCNN steps (>= 201)")
    parser.add_argument("--deep-steps", type=int, default=200, help="DeepCNN steps")
    parser.add_argument("--resnet-steps", type=int, default=100, help="resnet18 steps")
    parser.add_argument(
        "--models", default="SimpleCNN,deep,resnet18", help="which models, comma-separated"
    )
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    data = load_dataset("fashion-mnist-mini")
    gen = torch.Generator().manual_seed(0)
    batches = [
        (x.to(device), y.to(device)) for x, y in data.train.batches(64, shuffle=True, generator=gen)
    ]
    config = TrainConfig()
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {where}, batch 64")
    print("per-step paired ratio to plain: median (quartiles); total: ratio of total times")
    print(f"{'model':<10}{'plain ms':>9}" + "".join(f"{m:>22}{'total':>7}" for m in MODES[1:]))
    shuffler = random.Random(0)
    rgb = [(x.expand(-1, 3, -1, -1).contiguous(), y) for x, y in batches]
    for name, build, steps, inputs in (
        ("SimpleCNN", lambda: SimpleCNN(1, 10, 28), args.steps, batches),
        ("deep", lambda: DeepCNN(1, 10, 28), args.deep_steps, batches),
        ("resnet18", lambda: torchvision.models.resnet18(num_classes=10), args.resnet_steps, rgb),
    ):
        if name not in args.models.split(","):
            continue
        torch.manual_seed(0)
        base: nn.Module = build().to(device)
        models = {mode: copy.deepcopy(base) for mode in MODES}
        states = {
            mode: TrainState(config, data.info, m, build_optimizer(config, m), device)
            for mode, m in models.items()
        }
        monitors = {
            "monitor": GradMonitor(models["monitor"]),
            "monitor/20": GradMonitor(models["monitor/20"], MonitorConfig(check_every=20)),
        }
        for mode, monitor in monitors.items():
            monitor.on_train_start(states[mode])  # as fit() starts it
        folder = tempfile.TemporaryDirectory()
        run = watch(models["watch"], _loss_fn, Path(folder.name) / "run")
        times: dict[str, list[float]] = {m: [] for m in MODES}
        order = list(MODES)
        for step in range(-5, steps):  # 5 warm-up steps
            x, y = inputs[step % len(inputs)]
            shuffler.shuffle(order)
            for mode in order:
                with torch.autograd.set_detect_anomaly(mode == "detect_anomaly"):
                    sync()
                    start = time.perf_counter()
                    if mode == "watch":
                        _watched_step(states[mode], (x, y), max(step, 0), run)
                    else:
                        _step(states[mode], x, y, max(step, 0), monitors.get(mode))
                    sync()
                    seconds = time.perf_counter() - start
                if step >= 0:
                    times[mode].append(seconds)
        for monitor in monitors.values():
            monitor.flush()
        run.close()
        folder.cleanup()
        plain = times["plain"]
        row = f"{name:<10}{statistics.median(plain) * 1e3:>9.2f}"
        for mode in MODES[1:]:
            paired = [t / p for t, p in zip(times[mode], plain, strict=True)]
            row += f"{_quartiles(paired):>22}{sum(times[mode]) / sum(plain):>7.3f}"
        print(row)
        alone = _check_alone(models["plain"])
        share = alone / statistics.median(plain)
        print(f"{'':<10}monitor.check() alone: {alone * 1e6:.0f} us/step = {share:.2%} of a step")
    print("goal: monitor / plain <= 1.03, watch / plain <= 1.03")


if __name__ == "__main__":
    main()
