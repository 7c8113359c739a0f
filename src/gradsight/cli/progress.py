"""Live training progress in the terminal: a progress bar, then one line per epoch."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from gradsight.train.events import EpochRecord, Observer, StepRecord, TrainState

__all__ = ["ProgressDisplay", "epoch_table"]


def _epoch_line(record: EpochRecord, epochs: int) -> str:
    return (
        f"epoch {record.epoch}/{epochs}  train loss {record.train_loss:.4f} "
        f"acc {record.train_acc:.2%}  test loss {record.test_loss:.4f} "
        f"acc {record.test_acc:.2%}  ({record.seconds:.1f}s)"
    )


def epoch_table(records: list[EpochRecord]) -> Table:
    """Return the per-epoch summary as a rich table."""
    table = Table(title="per-epoch summary")
    for col in ("epoch", "train loss", "train acc", "test loss", "test acc", "seconds"):
        table.add_column(col, justify="right")
    for r in records:
        table.add_row(
            str(r.epoch), f"{r.train_loss:.4f}", f"{r.train_acc:.2%}",
            f"{r.test_loss:.4f}", f"{r.test_acc:.2%}", f"{r.seconds:.1f}",
        )  # fmt: skip
    return table


class ProgressDisplay(Observer):
    """Show batches, loss, accuracy and images/s as training runs.

    On a terminal a progress bar updates live; elsewhere (a log file, CI) each step record
    becomes one plain line.
    """

    def __init__(self, console: Console, batches_per_epoch: int) -> None:
        self.console = console
        self.batches = batches_per_epoch
        self.live = console.is_terminal
        self._progress: Progress | None = None
        self._task = TaskID(0)

    def on_epoch_start(self, state: TrainState) -> None:
        if not self.live:
            return
        self._progress = Progress(
            TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"), TimeElapsedColumn(),
            console=self.console, transient=True,
        )  # fmt: skip
        self._task = self._progress.add_task(
            "train", total=self.batches, epoch=f"{state.epoch}/{state.config.epochs}", stats=""
        )
        self._progress.start()

    def on_after_step(self, state: TrainState) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=state.batch_index + 1)

    def on_log(self, state: TrainState, record: StepRecord) -> None:
        stats = f"loss {record.loss:.4f}  acc {record.acc:.2%}  {record.images_per_s:,.0f} img/s"
        if self._progress is not None:
            self._progress.update(self._task, stats=stats)
        else:
            self.console.print(
                f"epoch {state.epoch} step {record.step} "
                f"[{state.batch_index + 1}/{self.batches}]  {stats}",
                highlight=False,
            )

    def _stop_bar(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def on_epoch_end(self, state: TrainState, record: EpochRecord) -> None:
        self._stop_bar()
        self.console.print(_epoch_line(record, state.config.epochs), highlight=False)

    def on_train_end(self, state: TrainState, status: str) -> None:
        self._stop_bar()
