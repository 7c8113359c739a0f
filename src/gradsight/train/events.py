"""Named events the training loop emits, and the observer base class that receives them.

Observers (the graph capture, backward trace, gradient monitor, run recorder, the CLI's
progress display) plug into the loop through these events without editing it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.optim.lr_scheduler import LRScheduler

from gradsight.autograd.tensors import read_scalars

if TYPE_CHECKING:
    from gradsight.config import TrainConfig
    from gradsight.data.base import DatasetInfo
    from gradsight.train.progress import MetricWindow

__all__ = ["EVENTS", "EpochRecord", "EventBus", "Observer", "StepRecord", "TrainState"]

#: Every event, in the order one epoch emits them.
EVENTS = (
    "train_start",  # once, before the first batch
    "epoch_start",
    "before_forward",  # state.inputs/targets are the batch; gradients were zeroed
    "after_forward",  # state.outputs and state.loss are set
    "after_backward",  # every parameter's .grad is filled; the graph is freed
    "before_step",  # last chance to read or clip gradients, or set state.skip_step
    "after_step",  # state.step counts optimizer steps done
    "log",  # every config.log_every steps, with a StepRecord
    "epoch_end",  # after evaluation, with an EpochRecord
    "train_end",  # once, with the final status, also on error or Ctrl-C
)


@dataclass
class TrainState:
    """What the loop is doing right now; observers read it and may set ``should_stop``."""

    config: TrainConfig
    info: DatasetInfo
    model: nn.Module
    optimizer: torch.optim.Optimizer
    device: torch.device
    epoch: int = 0  # 1-based once training starts
    step: int = 0  # optimizer steps done so far, over all epochs
    batch_index: int = 0  # 0-based index of the batch inside the epoch
    inputs: Tensor | None = None  # (B, C, H, W)
    targets: Tensor | None = None  # (B,)
    outputs: Tensor | None = None  # (B, num_classes)
    loss: Tensor | None = None  # scalar
    should_stop: bool = False
    stop_reason: str | None = None
    skip_step: bool = False  # set before optimizer.step() to leave the weights untouched
    skipped_steps: int = 0  # updates skipped so far (their batches are left out of metrics)
    clipped_steps: int = 0  # updates whose gradients config.clip_grad_norm scaled down
    clipped_unread: list[Tensor] = field(default_factory=list)  # on the device, not read yet
    grad_norm: Tensor | None = None  # this step's total gradient norm, if an observer took it
    scaler: torch.amp.GradScaler | None = None  # --amp fp16: gradients unscaled before events
    scheduler: LRScheduler | None = None  # --lr-schedule: stepped after every step
    history: list[EpochRecord] = field(default_factory=list)
    data_generator: torch.Generator | None = None  # draws each epoch's data order
    window: MetricWindow | None = None  # the current epoch's running metrics
    extras: dict[str, Any] = field(
        default_factory=dict
    )  # observers' additions to the next log line

    def count_clipped(self) -> int:
        """``clipped_steps``, with the steps clipped on an accelerator and not read yet added
        (one transfer for all of them)."""
        if self.clipped_unread:
            self.clipped_steps += round(sum(read_scalars(self.clipped_unread)))
            self.clipped_unread = []
        return self.clipped_steps

    def request_stop(self, reason: str) -> None:
        """Ask the loop to stop after the current step; ``reason`` ends up in the summary."""
        self.should_stop = True
        self.stop_reason = reason


@dataclass(frozen=True)
class StepRecord:
    """Metrics over the steps since the previous record (one line of ``metrics.jsonl``)."""

    step: int
    epoch: int
    loss: float  # mean over the window's images
    acc: float
    lr: float
    images: int  # images in the window
    seconds: float  # wall time of the window (not reproducible, excluded from comparisons)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "step", **self.__dict__}

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else float("nan")


@dataclass(frozen=True)
class EpochRecord:
    """One epoch's train and test metrics (one line of ``metrics.jsonl``)."""

    epoch: int
    step: int
    train_loss: float  # NaN (null in JSON) when no image was trained on
    train_acc: float
    test_loss: float
    test_acc: float
    seconds: float
    complete: bool = True  # False: the run stopped inside this epoch

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "epoch", **self.__dict__}


class Observer:
    """Base class for anything that watches training; override only the events you need.

    Every method receives the live :class:`TrainState`. An observer must not change the
    model, the gradients or the optimizer unless that is its documented job (clipping);
    it may call ``state.request_stop(reason)``.
    """

    def on_train_start(self, state: TrainState) -> None: ...
    def on_epoch_start(self, state: TrainState) -> None: ...
    def on_before_forward(self, state: TrainState) -> None: ...
    def on_after_forward(self, state: TrainState) -> None: ...
    def on_after_backward(self, state: TrainState) -> None: ...
    def on_before_step(self, state: TrainState) -> None: ...
    def on_after_step(self, state: TrainState) -> None: ...
    def on_log(self, state: TrainState, record: StepRecord) -> None: ...
    def on_epoch_end(self, state: TrainState, record: EpochRecord) -> None: ...
    def on_train_end(self, state: TrainState, status: str) -> None: ...


class EventBus:
    """Deliver events to observers, calling only those that override each event."""

    def __init__(self, observers: Sequence[Observer] = ()) -> None:
        self._table: dict[str, list[Any]] = {}
        for name in EVENTS:
            method = f"on_{name}"
            base = getattr(Observer, method)
            self._table[name] = [
                getattr(o, method) for o in observers if getattr(type(o), method, base) is not base
            ]

    def emit(self, name: str, *args: Any) -> None:
        for callback in self._table[name]:
            callback(*args)

    def emit_all(self, name: str, *args: Any) -> None:
        """Like :meth:`emit`, but every observer is called even when one raises (``train_end``:
        each must close its files and take off its hooks). The first error is raised once
        the last observer has run; a later one is a warning naming its observer."""
        first: BaseException | None = None
        for callback in self._table[name]:
            try:
                callback(*args)
            except BaseException as exc:  # Ctrl-C too: let the others close first
                if first is not None:
                    owner = type(getattr(callback, "__self__", callback)).__name__
                    warnings.warn(f"{owner}.on_{name} also failed: {exc!r}", RuntimeWarning, 2)
                first = first or exc
        if first is not None:
            raise first
