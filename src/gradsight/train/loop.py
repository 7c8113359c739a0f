"""The article's training loop as a library: forward, loss, zero_grad, backward, step.

``fit`` emits the events of :mod:`gradsight.train.events` so that observers plug in
without editing the loop. Metrics stay on the device and are synced to the host only every
``config.log_every`` steps, so the loop runs as fast as a hand-written one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from gradsight.autograd import tensors
from gradsight.data.base import Split
from gradsight.rng import restore_rng
from gradsight.train.clip import clip_gradients, clip_without_sync
from gradsight.train.distributed import all_reduce_sums
from gradsight.train.events import EpochRecord, EventBus, Observer, StepRecord, TrainState
from gradsight.train.progress import MetricWindow, ResumePoint
from gradsight.train.setup import Prepared
from gradsight.train.speed import autocast, grad_scaler, memory_format

__all__ = ["TrainResult", "evaluate", "fit", "one_line", "train_one_epoch"]


@dataclass(frozen=True)
class TrainResult:
    """How a run ended: ``completed``, ``stopped`` (an observer asked) or ``interrupted``."""

    status: str
    epochs: list[EpochRecord]
    steps: int
    stop_reason: str | None = None


def train_one_epoch(
    state: TrainState, split: Split, bus: EventBus, generator: torch.Generator, skip: int = 0
) -> tuple[float, float]:
    """Train ``state.model`` for one pass over ``split``; return (mean loss, accuracy).

    The first ``skip`` batches are drawn but not trained on (a resumed epoch); the running
    metrics continue ``state.window`` when it is set.
    """
    model, optimizer, config = state.model, state.optimizer, state.config
    criterion = nn.CrossEntropyLoss()
    model.train()
    window = state.window = state.window or MetricWindow()
    batches = split.batches(
        config.batch_size, shuffle=True, generator=generator, device=state.device
    )
    scaler = state.scaler
    for state.batch_index, (inputs, targets) in enumerate(batches):
        if state.batch_index < skip:  # same order as the interrupted run: skip what it did
            continue
        inputs = memory_format(inputs, config)
        state.inputs, state.targets, state.grad_norm = inputs, targets, None
        optimizer.zero_grad(set_to_none=True)
        bus.emit("before_forward", state)
        with autocast(config, state.device):
            state.outputs = outputs = model(inputs)  # (B, num_classes)
            state.loss = loss = criterion(outputs, targets)
        bus.emit("after_forward", state)
        if scaler is None:
            loss.backward()
        else:  # fp16: scaled backward, then true gradients for the observers and clipping
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        bus.emit("after_backward", state)
        bus.emit("before_step", state)
        if config.clip_grad_norm is not None and not state.skip_step:
            _clip(state, config.clip_grad_norm)
        skipped = state.skip_step
        if skipped:  # an observer vetoed this update (e.g. a NaN gradient): weights untouched
            state.skip_step = False
            state.skipped_steps += 1
        elif scaler is None:
            optimizer.step()
        else:
            scaler.step(optimizer)  # itself skips a step whose gradients overflowed
        if scaler is not None:
            scaler.update()
        if state.scheduler is not None:
            state.scheduler.step()
        state.step += 1
        bus.emit("after_step", state)
        if not skipped:
            window.add(loss, outputs, targets)
        if state.step % config.log_every == 0 or state.should_stop:
            if config.clip_grad_norm is not None:
                state.extras["clipped_steps"] = state.count_clipped()
            loss_sum, hits, images, seconds = window.flush()
            lr = float(optimizer.param_groups[0]["lr"])
            nan = float("nan")
            record = StepRecord(
                state.step, state.epoch, loss_sum / images if images else nan,
                hits / images if images else nan, lr, images, seconds,
            )  # fmt: skip
            bus.emit("log", state, record)
        if state.should_stop:
            break
    window.flush()
    state.inputs = state.targets = state.outputs = state.loss = None  # free the last graph
    state.window = None
    if not window.seen:  # every update was skipped: there is no training metric to report
        return math.nan, math.nan
    return window.loss_total / window.seen, window.hits_total / window.seen


def _clip(state: TrainState, max_norm: float) -> None:
    """Clip the gradients (reusing the monitor's total norm when it left one); a NaN/Inf
    total skips the update instead, so it never reaches the weights. With the NaN/Inf flag
    read every N > 1 steps on an accelerator, nothing is read: the clipped count stays on
    the device until the next log, and a NaN/Inf is the monitor's to report."""
    if state.config.nonfinite_check_every > 1 and not tensors.read_is_free(state.device):
        clipped = clip_without_sync(state.model.parameters(), max_norm, state.grad_norm)
        if clipped is not None:
            state.clipped_unread.append(clipped)
        return
    total, go = clip_gradients(state.model.parameters(), max_norm, state.grad_norm)
    state.skip_step = not go
    state.clipped_steps += go and total > max_norm


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
    n = max(len(split), 1)  # a sharded split: the whole split, its sums added over the ranks
    total_loss, total_hits = all_reduce_sums([float(loss_sum), int(hits)], device)
    return total_loss / n, round(total_hits) / n


def one_line(exc: BaseException, limit: int = 200) -> str:
    """``exc`` as one line: ``ValueError: bad shape``, cut at ``limit`` characters."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _resume_into(state: TrainState, generator: torch.Generator, resume: ResumePoint) -> None:
    """Put the loop's position and data order where ``resume`` left them."""
    state.step, state.skipped_steps = resume.step, resume.skipped_steps
    state.clipped_steps = resume.clipped_steps
    state.history = list(resume.history)
    state.window = resume.window
    generator.set_state(resume.data_order_state)
    if state.scaler is not None and resume.scaler is not None:
        state.scaler.load_state_dict(resume.scaler)


def fit(
    prepared: Prepared, observers: Sequence[Observer] = (), resume: ResumePoint | None = None
) -> TrainResult:
    """Train for ``config.epochs`` epochs, evaluating on the test split after each one.

    The data order comes from a generator seeded with ``config.seed``, so two runs with the
    same config see the same batches. ``train_end`` is emitted on every exit path, to every
    observer even when one of them raises there (the first error is raised after); on Ctrl-C
    the ``KeyboardInterrupt`` is re-raised after it.

    With ``resume`` (the model and optimizer already restored by the caller), training
    continues at ``resume.epoch`` after its first ``resume.batch_index`` batches, with the data
    order and every random generator as they were, so the result is bit-identical.

    Returns:
        The status, the epoch records and the number of optimizer steps.
    """
    config = prepared.config
    state = TrainState(
        config, prepared.data.info, prepared.model, prepared.optimizer, prepared.device,
        scaler=grad_scaler(config, prepared.device), scheduler=prepared.scheduler,
    )  # fmt: skip
    bus = EventBus(observers)
    generator = state.data_generator = torch.Generator().manual_seed(config.seed)
    status = "failed"
    first, skip = (1, 0) if resume is None else (resume.epoch, resume.batch_index)
    if resume is not None:
        _resume_into(state, generator, resume)
    bus.emit("train_start", state)
    try:
        if resume is not None:
            restore_rng(resume.rng)  # last, so nothing draws between restore and training
        for state.epoch in range(first, config.epochs + 1):
            bus.emit("epoch_start", state)
            started = time.perf_counter()
            train_loss, train_acc = train_one_epoch(
                state, prepared.data.train, bus, generator, skip if state.epoch == first else 0
            )
            test_loss, test_acc = evaluate(  # in float32: the accuracy is the model's own
                state.model, prepared.data.test, config.batch_size, state.device
            )
            whole = state.batch_index + 1 >= prepared.data.train.num_batches(config.batch_size)
            record = EpochRecord(
                state.epoch, state.step, train_loss, train_acc, test_loss, test_acc,
                time.perf_counter() - started, whole,
            )  # fmt: skip
            state.history.append(record)
            bus.emit("epoch_end", state, record)
            if state.should_stop:
                break
        status = "stopped" if state.should_stop else "completed"
    except KeyboardInterrupt:
        status = "interrupted"
        state.stop_reason = state.stop_reason or "interrupted (Ctrl-C)"
        raise
    except Exception as exc:  # the summary says why; the caller sees the exception
        state.stop_reason = state.stop_reason or one_line(exc)
        raise
    finally:
        bus.emit_all("train_end", state, status)  # every observer, even if one raises
    return TrainResult(status, list(state.history), state.step, state.stop_reason)
