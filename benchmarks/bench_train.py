"""Images/s of ``gradsight train`` as users run it vs the article's hand-written loop.

Every variant trains the same SimpleCNN from the same initial weights (``prepare`` with seed
42) on the same in-memory batches in the same order (the loop's generator, seeded the same),
SGD lr 0.01, batch 64, for ``--epochs`` epochs, each followed by an evaluation on the test
split. Timed: those epochs and evaluations, nothing before (process start-up, imports, data
loading, which is done once and shared, model and optimizer building) or after.

- ``article loop``: the article's loop by hand: zero_grad, forward, loss, backward, step,
  ``running_loss += loss.item()`` and an accuracy ``.item()`` every step.
- ``no-.item() loop``: the same with the loss and hits summed on the device, read once per
  epoch: what a hand-written loop costs without per-step host reads.
- ``gradsight train``: ``gradsight.cli.main(["train", ..., "--quiet", "--out", TMP])`` in
  process, with everything it writes: the gradient monitor, the run recorder (env.json,
  config.json, metrics.jsonl, summary.json, model.pt), events.jsonl, the first step's
  graph.json/graph.svg/graph-modules.svg/trace.json, and a checkpoint at every epoch end.
  Timed: its ``fit()`` call (train_start to train_end, every observer included); its data
  loading is served from the shared in-memory copy, so it times what the loops time.
  ``whole command`` also counts the rest of the call: the run folder's checks, model
  building, and the plots and report.html written after training.
- ``gradsight fit, no observers``: ``fit(prepare(config))`` with no observers: the loop alone.
- ``article loop (again)``: the noise floor (its ratio should be ~1.00).

All in one process; rounds run every variant once, in a new random order, so machine noise
and position effects hit every variant alike; each rate is divided by the article loop's
rate of the same round and the median of those paired ratios is reported.
Goal: gradsight train / article loop >= 0.95.

    python benchmarks/bench_train.py [--data fashion-mnist-mini] [--data-dir DIR] [--epochs 3]
                                     [--repeats 5] [--device cpu] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import math
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

import gradsight.cli.train as cli_train
import gradsight.train.setup as train_setup
from gradsight.cli import main as cli_main
from gradsight.config import TrainConfig
from gradsight.data import LoadedDataset, load_dataset
from gradsight.train import Prepared, fit, prepare

GOAL = 0.95


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def _evaluate(prepared: Prepared) -> float:
    """Test accuracy, summed on the device and read once (the same for both hand loops)."""
    model = prepared.model
    model.eval()
    hits = torch.zeros((), dtype=torch.int64, device=prepared.device)
    batch = prepared.config.batch_size
    for images, labels in prepared.data.test.batches(batch, shuffle=False, device=prepared.device):
        hits += (model(images).argmax(1) == labels).sum()
    model.train()
    return int(hits) / len(prepared.data.test)


def article_loop(prepared: Prepared, epochs: int) -> None:
    """The article's loop: zero_grad, forward, loss, backward, step, two ``.item()`` per step."""
    model, optimizer, criterion = prepared.model, prepared.optimizer, nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(prepared.config.seed)
    batch = prepared.config.batch_size
    for _ in range(epochs):
        model.train()
        running_loss, correct = 0.0, 0
        for images, labels in prepared.data.train.batches(
            batch, shuffle=True, generator=generator, device=prepared.device
        ):
            optimizer.zero_grad()
            outputs = model(images)  # (B, 10)
            loss = criterion(outputs, labels)
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
            correct += (outputs.argmax(1) == labels).sum().item()
        _evaluate(prepared)


def no_item_loop(prepared: Prepared, epochs: int) -> None:
    """The article's loop with the loss and hits kept on the device, read once per epoch."""
    model, optimizer, criterion = prepared.model, prepared.optimizer, nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(prepared.config.seed)
    batch = prepared.config.batch_size
    for _ in range(epochs):
        model.train()
        loss_sum = torch.zeros((), device=prepared.device)
        hits = torch.zeros((), dtype=torch.int64, device=prepared.device)
        for images, labels in prepared.data.train.batches(
            batch, shuffle=True, generator=generator, device=prepared.device
        ):
            optimizer.zero_grad(set_to_none=True)
            outputs = model(images)  # (B, 10)
            loss = criterion(outputs, labels)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach()
            hits += (outputs.argmax(1) == labels).sum()
        float(loss_sum), int(hits)  # one read per epoch
        _evaluate(prepared)


@contextlib.contextmanager
def cached_data(data: LoadedDataset) -> Iterator[None]:
    """Serve ``data`` to every ``prepare`` (the CLI's included) instead of loading it again."""
    real = train_setup.load_dataset
    train_setup.load_dataset = lambda *args, **kwargs: data  # type: ignore[assignment]
    try:
        yield
    finally:
        train_setup.load_dataset = real


@contextlib.contextmanager
def timed_cli_fit(
    extra: Sequence[Any] = (), on_prepared: Callable[[Prepared], None] | None = None
) -> Iterator[list[float]]:
    """Time the ``fit()`` call that ``gradsight train`` makes, observers and all.

    Yields a list that gets the seconds of each such call. ``extra`` observers are appended
    after the CLI's own (so their ``epoch_end`` runs after the checkpoint is written);
    ``on_prepared`` sees the prepared run before training starts.
    """
    real, seconds = cli_train.fit, []

    def fit_timed(prepared: Prepared, observers: Sequence[Any] = (), start: Any = None) -> Any:
        if on_prepared is not None:
            on_prepared(prepared)
        _sync(prepared.device)
        began = time.perf_counter()
        try:
            return real(prepared, [*observers, *extra], start)
        finally:
            _sync(prepared.device)
            seconds.append(time.perf_counter() - began)

    cli_train.fit = fit_timed  # type: ignore[assignment]
    try:
        yield seconds
    finally:
        cli_train.fit = real


def cli_args(config: TrainConfig, out: Path) -> list[str]:
    """``gradsight train`` options for ``config``'s data, optimizer, batch and epochs."""
    args = ["train", "--quiet", "--out", str(out), "--data", config.dataset]
    if config.data_dir:
        args += ["--data-dir", config.data_dir]
    args += ["--device", config.device, "--optimizer", config.optimizer, "--lr", str(config.lr)]
    if config.momentum:
        args += ["--momentum", str(config.momentum)]
    return [
        *args, "--batch-size", str(config.batch_size), "--epochs", str(config.epochs),
        "--seed", str(config.seed),
    ]  # fmt: skip


def run_cli(config: TrainConfig) -> tuple[float, float]:
    """Run ``gradsight train`` in process; return (seconds in fit, seconds of the whole call)."""
    with tempfile.TemporaryDirectory() as folder, timed_cli_fit() as fit_seconds:
        out, err = io.StringIO(), io.StringIO()
        began = time.perf_counter()
        code = cli_main(cli_args(config, Path(folder) / "run"), stdout=out, stderr=err)
        whole = time.perf_counter() - began
        if code != 0 or len(fit_seconds) != 1:
            raise RuntimeError(f"gradsight train exited {code}:\n{out.getvalue()}{err.getvalue()}")
        return fit_seconds[0], whole


def _timed_loop(config: TrainConfig, loop: Callable[[Prepared, int], None]) -> float:
    prepared = prepare(config)
    _sync(prepared.device)
    began = time.perf_counter()
    loop(prepared, config.epochs)
    _sync(prepared.device)
    return time.perf_counter() - began


def _timed_fit(config: TrainConfig) -> float:
    prepared = prepare(config)
    _sync(prepared.device)
    began = time.perf_counter()
    fit(prepared, [])
    _sync(prepared.device)
    return time.perf_counter() - began


class StepClock:
    """The time of every optimizer step of the runs inside it (a global step pre-hook)."""

    def __init__(self) -> None:
        self.stamps: list[float] = []

    def __enter__(self) -> StepClock:
        self._handle = register_optimizer_step_pre_hook(self._hook)
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.remove()

    def _hook(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self.stamps.append(time.perf_counter())

    def take(self) -> list[float]:
        """The stamps since the last call."""
        stamps, self.stamps = self.stamps, []
        return stamps


@dataclass
class Timings:
    """Per variant and round: seconds timed, and the median interval between two optimizer
    steps (a typical step: forward, backward, step and what observers do every step)."""

    seconds: dict[str, list[float]]
    step: dict[str, list[float]]
    steps: int


def measure(config: TrainConfig, repeats: int, warmup: bool = True) -> Timings:
    """Seconds of every variant, ``repeats`` interleaved rounds in random order."""
    whole: list[float] = []

    def cli() -> float:
        in_fit, all_of_it = run_cli(config)
        whole.append(all_of_it)
        return in_fit

    variants: dict[str, Callable[[], float]] = {
        "article loop": lambda: _timed_loop(config, article_loop),
        "no-.item() loop": lambda: _timed_loop(config, no_item_loop),
        "gradsight train": cli,
        "gradsight fit, no observers": lambda: _timed_fit(config),
        "article loop (again)": lambda: _timed_loop(config, article_loop),
    }
    with StepClock() as clock:
        if warmup:
            for fn in variants.values():
                fn()
            whole.clear()
        timings = Timings({name: [] for name in variants}, {name: [] for name in variants}, 0)
        order, shuffler = list(variants), random.Random(0)
        for _ in range(repeats):
            shuffler.shuffle(order)
            for name in order:
                clock.take()
                timings.seconds[name].append(variants[name]())
                stamps = clock.take()
                gaps = [b - a for a, b in itertools.pairwise(stamps)]
                timings.step[name].append(statistics.median(gaps) if gaps else math.nan)
                timings.steps = len(stamps)
    timings.seconds["gradsight train, whole command"] = whole
    return timings


def _paired(values: list[float], base: list[float]) -> float:
    # each round's ratio to the base run of the same round: slow drifts of the machine's
    # speed cancel out; the median of those ratios is the figure that counts
    return statistics.median(v / b for v, b in zip(values, base, strict=True))


def report(timings: Timings, images: int) -> float:
    """Print images/s and paired ratios, then where the time goes; return gradsight train /
    article loop."""
    rates = {name: [images / s for s in values] for name, values in timings.seconds.items()}
    article, bare = rates["article loop"], rates["no-.item() loop"]
    print(f"{'variant':<32}{'images/s':>10}{'vs article loop':>17}{'vs no-.item() loop':>20}")
    for name, values in rates.items():
        print(
            f"{name:<32}{statistics.median(values):>10,.0f}"
            f"{_paired(values, article):>17.3f}{_paired(values, bare):>20.3f}"
        )
    ratio = _paired(rates["gradsight train"], article)
    verdict = "met" if ratio >= GOAL else "NOT met"
    print(f"goal gradsight train / article loop >= {GOAL}: {verdict} ({ratio:.3f})")
    print(
        f"where the time goes ({timings.steps} steps a run): the median step (forward, backward, "
        "optimizer step and every per-step observer call), and the rest (seconds - steps x "
        "median step: evaluations, checkpoints, the first step, once-per-run work)"
    )
    print(f"{'variant':<32}{'median step us':>15}{'vs article loop':>17}{'rest ms':>9}"
          f"{'rest - article':>16}")  # fmt: skip

    def rest(name: str) -> list[float]:
        steps = zip(timings.seconds[name], timings.step[name], strict=True)
        return [seconds - timings.steps * median for seconds, median in steps]

    base_step, base_rest = timings.step["article loop"], rest("article loop")
    for name, step in timings.step.items():
        left = rest(name)
        over = statistics.median(r - b for r, b in zip(left, base_rest, strict=True))
        print(
            f"{name:<32}{statistics.median(step) * 1e6:>15,.0f}{_paired(step, base_step):>17.3f}"
            f"{statistics.median(left) * 1e3:>9,.0f}"
            f"{over * 1e3:>+16,.0f}"
        )
    return ratio


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="fashion-mnist-mini")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run (default 3)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: synthetic data, 1 epoch, 1 round"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.data, args.data_dir, args.epochs, args.repeats = "synthetic", None, 1, 1
    config = TrainConfig(
        dataset=args.data, data_dir=args.data_dir, device=args.device, epochs=args.epochs
    )
    data = load_dataset(config.dataset, data_dir=config.data_dir, seed=config.seed)
    device = torch.device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    images = len(data.train) * config.epochs
    print(
        f"{data.info.name}: {len(data.train):,} train / {len(data.test):,} test images, "
        f"{config.epochs} epochs, batch {config.batch_size}, sgd lr {config.lr}, {where}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{args.repeats} interleaved rounds"
    )
    print(
        "timed: the epochs and an evaluation after each (not start-up, data loading, "
        "model building); images/s = train images x epochs / seconds"
    )
    with cached_data(data):
        timings = measure(config, args.repeats, warmup=not args.quick)
    report(timings, images)


if __name__ == "__main__":
    main()
