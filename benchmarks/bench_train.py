"""Images/s of gradsight's training loop vs the article's hand-written loop, in one process.

Both loops train the same SimpleCNN from the same initial weights on the same in-memory
batches (same shuffle), with SGD lr 0.01 and batch 64, one epoch per run. Runs are
interleaved, in a new random order each round, so machine noise and position effects hit
every loop alike; each loop's rate is divided by the hand-written rate of the same round and
the median of those paired ratios is reported. A second copy of the hand-written loop
measures the noise floor (its ratio should be ~1.00). Goal: gradsight / hand >= 0.97.

    python benchmarks/bench_train.py [--data fashion-mnist-mini] [--repeats 15] [--device cpu]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from gradsight.config import TrainConfig
from gradsight.train import EventBus, Observer, TrainState, prepare, train_one_epoch


class NoOp(Observer):
    """Listens to every per-step event and does nothing: the cost of dispatch alone."""

    def on_after_forward(self, state: TrainState) -> None: ...
    def on_after_backward(self, state: TrainState) -> None: ...
    def on_before_step(self, state: TrainState) -> None: ...
    def on_after_step(self, state: TrainState) -> None: ...


def hand_written_epoch(state: TrainState, split, generator: torch.Generator) -> None:  # type: ignore[no-untyped-def]
    """The article's loop: zero_grad, forward, loss, backward, step, running loss."""
    model, optimizer, criterion = state.model, state.optimizer, nn.CrossEntropyLoss()
    model.train()
    running_loss, correct = 0.0, 0
    for images, labels in split.batches(64, shuffle=True, generator=generator, device=state.device):
        optimizer.zero_grad()
        outputs = model(images)
        loss = criterion(outputs, labels)
        loss.backward()
        optimizer.step()
        running_loss += loss.item()
        correct += (outputs.argmax(1) == labels).sum().item()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="fashion-mnist-mini")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    config = TrainConfig(dataset=args.data, device=args.device)
    prepared = prepare(config)
    state = TrainState(
        config, prepared.data.info, prepared.model, prepared.optimizer, prepared.device
    )
    initial = {k: v.clone() for k, v in prepared.model.state_dict().items()}
    split, n = prepared.data.train, len(prepared.data.train)

    def run(epoch: Callable[[torch.Generator], None]) -> float:
        state.model.load_state_dict(initial)
        state.optimizer.state.clear()
        generator = torch.Generator().manual_seed(0)
        _sync(state.device)
        start = time.perf_counter()
        epoch(generator)
        _sync(state.device)
        return n / (time.perf_counter() - start)

    variants: dict[str, Callable[[torch.Generator], None]] = {
        "hand-written": lambda g: hand_written_epoch(state, split, g),
        "gradsight": lambda g: train_one_epoch(state, split, EventBus(), g) and None,
        "gradsight+noop-observer": lambda g: (
            train_one_epoch(state, split, EventBus([NoOp()]), g) and None
        ),
    }
    for fn in variants.values():  # warm-up
        run(fn)
    variants["hand-written (again)"] = variants["hand-written"]
    rates: dict[str, list[float]] = {name: [] for name in variants}
    order = list(variants)
    shuffler = random.Random(0)
    for _ in range(args.repeats):
        shuffler.shuffle(order)
        for name in order:
            rates[name].append(run(variants[name]))
    print(
        f"{n} images/epoch, batch 64, {state.device}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {args.repeats} interleaved rounds"
    )
    print(f"{'loop':<26}{'images/s':>12}{'paired ratio vs hand':>24}")
    hand = rates["hand-written"]
    for name, values in rates.items():
        # each round's ratio to the hand-written run of the same round: slow drifts of the
        # machine's speed cancel out; the median of those ratios is the figure that counts
        paired = statistics.median(v / h for v, h in zip(values, hand, strict=True))
        print(f"{name:<26}{statistics.median(values):>12,.0f}{paired:>24.3f}")
    ratio = statistics.median(g / h for g, h in zip(rates["gradsight"], hand, strict=True))
    print(f"goal gradsight/hand >= 0.97: {'met' if ratio >= 0.97 else 'NOT met'} ({ratio:.3f})")


if __name__ == "__main__":
    main()
