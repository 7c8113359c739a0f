"""The article's training loop as a library: forward, loss, zero_grad, backward, step.

``fit`` emits the events of :mod:`gradsight.train.events` so that observers plug in
without editing the loop. Metrics stay on the device and are synced to the host only every
``config.log_every`` steps, so the loop runs as fast as a hand-written one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from gradsight.data.base import Split
from gradsight.train.events import EpochRecord, EventBus, Observer, StepRecord, TrainState
from gradsight.train.setup import Prepared

__all__ = ["TrainResult", "evaluate", "fit", "train_one_epoch"]


@dataclass(frozen=True)
class TrainResult:
    """How a run ended: ``completed``, ``stopped`` (an observer asked) or ``interrupted``."""

    status: str
    epochs: list[EpochRecord]
    steps: int
    stop_reason: str | None = None


class _Window:
    """Per-step losses and hit counts kept on the device until the next sync."""

    def __init__(self) -> None:
        self.losses: list[Tensor] = []  # each: scalar mean loss of one batch
        self.hits: list[Tensor] = []  # each: scalar count of correct predictions
        self.sizes: list[int] = []
        self.started = time.perf_counter()

    def reset(self) -> None:
        self.losses, self.hits, self.sizes = [], [], []
        self.started = time.perf_counter()

    def add(self, loss: Tensor, outputs: Tensor, targets: Tensor) -> None:
        self.losses.append(loss.detach())
        self.hits.append((outputs.detach().argmax(dim=1) == targets).sum())
        self.sizes.append(int(targets.shape[0]))

    def flush(self) -> tuple[float, int, int, float]:
        """Return (loss sum over images, hits, images, seconds) and start a new window."""
        if not self.sizes:
            return 0.0, 0, 0, 0.0
        sizes = torch.tensor(self.sizes, dtype=torch.float64)
        losses = torch.stack(self.losses).to("cpu", torch.float64)  # one sync per window
        loss_sum = float((losses * sizes).sum())
        hits = int(torch.stack(self.hits).sum())
        images, seconds = sum(self.sizes), time.perf_counter() - self.started
        self.reset()
        return loss_sum, hits, images, seconds


def train_one_epoch(
    state: TrainState, split: Split, bus: EventBus, generator: torch.Generator
) -> tuple[float, float]:
    """Train ``state.model`` for one pass over ``split``; return (mean loss, accuracy)."""
    model, optimizer, config = state.model, state.optimizer, state.config
    criterion = nn.CrossEntropyLoss()
    model.train()
    window, loss_total, hits_total, seen = _Window(), 0.0, 0, 0
    batches = split.batches(
        config.batch_size, shuffle=True, generator=generator, device=state.device
    )
    for state.batch_index, (inputs, targets) in enumerate(batches):
        state.inputs, state.targets = inputs, targets
        optimizer.zero_grad(set_to_none=True)
        bus.emit("before_forward", state)
        state.outputs = outputs = model(inputs)  # (B, num_classes)
        state.loss = loss = criterion(outputs, targets)
        bus.emit("after_forward", state)
        loss.backward()
        bus.emit("after_backward", state)
        bus.emit("before_step", state)
        skipped = state.skip_step
        if skipped:  # an observer vetoed this update (e.g. a NaN gradient): weights untouched
            state.skip_step = False
            state.skipped_steps += 1
        else:
            optimizer.step()
        state.step += 1
        bus.emit("after_step", state)
        if not skipped:
            window.add(loss, outputs, targets)
        if state.step % config.log_every == 0 or state.should_stop:
            loss_sum, hits, images, seconds = window.flush()
            loss_total, hits_total, seen = loss_total + loss_sum, hits_total + hits, seen + images
            lr = float(optimizer.param_groups[0]["lr"])
            nan = float("nan")
            record = StepRecord(
                state.step, state.epoch, loss_sum / images if images else nan,
                hits / images if images else nan, lr, images, seconds,
            )  # fmt: skip
            bus.emit("log", state, record)
        if state.should_stop:
            break
    loss_sum, hits, images, _ = window.flush()
    loss_total, hits_total, seen = loss_total + loss_sum, hits_total + hits, seen + images
    state.inputs = state.targets = state.outputs = state.loss = None  # free the last graph
    return loss_total / max(seen, 1), hits_total / max(seen, 1)


@torch.no_grad()
def evaluate(
    model: nn.Module, split: Split, batch_size: int, device: torch.device
) -> tuple[float, float]:
    """Return (mean cross-entropy, accuracy) of ``model`` on ``split``, in eval mode."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    hits = torch.zeros((), dtype=torch.int64, device=device)
    for inputs, targets in split.batches(batch_size, shuffle=False, device=device):
        outputs = model(inputs)
        loss_sum += nn.functional.cross_entropy(outputs, targets, reduction="sum").double()
        hits += (outputs.argmax(dim=1) == targets).sum()
    model.train(was_training)
    n = max(len(split), 1)
    return float(loss_sum) / n, int(hits) / n


def fit(prepared: Prepared, observers: Sequence[Observer] = ()) -> TrainResult:
    """Train for ``config.epochs`` epochs, evaluating on the test split after each one.

    The data order comes from a generator seeded with ``config.seed``, so two runs with the
    same config see the same batches. ``train_end`` is emitted on every exit path; on Ctrl-C
    the ``KeyboardInterrupt`` is re-raised after it.

    Returns:
        The status, the epoch records and the number of optimizer steps.
    """
    config = prepared.config
    state = TrainState(
        config, prepared.data.info, prepared.model, prepared.optimizer, prepared.device
    )
    bus = EventBus(observers)
    generator = torch.Generator().manual_seed(config.seed)
    status = "failed"
    bus.emit("train_start", state)
    try:
        for state.epoch in range(1, config.epochs + 1):
            bus.emit("epoch_start", state)
            started = time.perf_counter()
            train_loss, train_acc = train_one_epoch(state, prepared.data.train, bus, generator)
            test_loss, test_acc = evaluate(
                state.model, prepared.data.test, config.batch_size, state.device
            )
            record = EpochRecord(
                state.epoch, state.step, train_loss, train_acc, test_loss, test_acc,
                time.perf_counter() - started,
            )  # fmt: skip
            state.history.append(record)
            bus.emit("epoch_end", state, record)
            if state.should_stop:
                break
        status = "stopped" if state.should_stop else "completed"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        bus.emit("train_end", state, status)
    return TrainResult(status, list(state.history), state.step, state.stop_reason)
