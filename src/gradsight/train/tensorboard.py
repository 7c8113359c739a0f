"""Write a run's scalars and gradient histograms for TensorBoard (``--tensorboard``)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any

from gradsight.errors import ConfigError
from gradsight.train.events import EpochRecord, Observer, StepRecord, TrainState

__all__ = ["TensorBoardLogger", "require_tensorboard"]


def require_tensorboard() -> None:
    """Raise a :class:`ConfigError` that says what to install when TensorBoard is missing."""
    if importlib.util.find_spec("tensorboard") is None:
        raise ConfigError(
            "--tensorboard needs the tensorboard package; install it with "
            "pip install 'gradsight[tensorboard]' (or pip install tensorboard)"
        )


class TensorBoardLogger(Observer):
    """Log losses, accuracies, the total gradient norm and gradient histograms.

    Scalars: ``train/loss``, ``train/acc``, ``train/lr`` per logged step; ``epoch/train_loss``,
    ``epoch/train_acc``, ``epoch/test_loss``, ``epoch/test_acc`` per epoch (x = step); and
    ``grad_norm/total`` per logged step, taken from the :class:`GradMonitor`'s
    ``state.extras``, so this observer must come after the monitor. Histograms
    ``grad/<param>`` every ``hist_every`` optimizer steps.

    Args:
        log_dir: folder of the event files.
        hist_every: steps between gradient histograms; 0 for none.
    """

    def __init__(self, log_dir: Path, hist_every: int = 100) -> None:
        self.log_dir = Path(log_dir)
        self.hist_every = hist_every
        self._writer: Any = None

    def on_train_start(self, state: TrainState) -> None:
        require_tensorboard()
        from torch.utils.tensorboard import SummaryWriter

        self._writer = SummaryWriter(log_dir=str(self.log_dir))

    def _scalar(self, tag: str, value: Any, step: int) -> None:
        if isinstance(value, (int, float)) and math.isfinite(value):
            self._writer.add_scalar(tag, value, step)

    def on_after_backward(self, state: TrainState) -> None:
        # state.step counts finished updates: this backward belongs to step state.step + 1
        step = state.step + 1
        if self.hist_every and step % self.hist_every == 0:
            for name, p in state.model.named_parameters():
                if p.grad is not None and bool(p.grad.isfinite().all()):
                    self._writer.add_histogram(f"grad/{name}", p.grad.detach().cpu(), step)

    def on_after_step(self, state: TrainState) -> None:
        if "grad_norm_total" in state.extras:  # set by the monitor on logging steps
            self._scalar("grad_norm/total", state.extras["grad_norm_total"], state.step)

    def on_log(self, state: TrainState, record: StepRecord) -> None:
        for name in ("loss", "acc", "lr"):
            self._scalar(f"train/{name}", getattr(record, name), record.step)

    def on_epoch_end(self, state: TrainState, record: EpochRecord) -> None:
        for name in ("train_loss", "train_acc", "test_loss", "test_acc"):
            self._scalar(f"epoch/{name}", getattr(record, name), record.step)

    def on_train_end(self, state: TrainState, status: str) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
