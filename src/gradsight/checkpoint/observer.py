"""The observer that checkpoints a run every N steps and at every epoch end."""

from __future__ import annotations

from pathlib import Path

import torch

from gradsight.checkpoint.io import crash_if_requested
from gradsight.checkpoint.state import capture
from gradsight.checkpoint.store import CheckpointSettings, CheckpointStore
from gradsight.train.events import EpochRecord, Observer, TrainState
from gradsight.train.progress import MetricWindow

__all__ = ["CheckpointObserver"]


class CheckpointObserver(Observer):
    """Save a resumable checkpoint every ``settings.every`` steps and at each epoch end.

    A step checkpoint is taken just before the next batch's forward pass, once the step's
    metrics are logged, so a resume neither repeats nor loses a ``metrics.jsonl`` line. Put
    it after the :class:`~gradsight.observers.RunRecorder` in the observer list.

    Args:
        settings: folder, interval and how many checkpoints to keep.
        run_dir: the run folder, recorded in each checkpoint.
    """

    def __init__(self, settings: CheckpointSettings, run_dir: Path) -> None:
        self.settings = settings
        self.run_dir = Path(run_dir)
        self.store = CheckpointStore(settings.directory, settings.keep)
        self.saved: list[Path] = []
        self._last_step = -1
        self._epoch_start: torch.Tensor | None = None  # data generator state, epoch start

    def on_train_start(self, state: TrainState) -> None:
        self.store.directory.mkdir(parents=True, exist_ok=True)
        self.store.remove_temp_files()
        self._last_step = state.step

    def on_epoch_start(self, state: TrainState) -> None:
        assert state.data_generator is not None, "fit sets state.data_generator"
        self._epoch_start = state.data_generator.get_state()

    def on_before_forward(self, state: TrainState) -> None:
        every = self.settings.every
        if every and state.step % every == 0 and state.step > self._last_step:
            assert self._epoch_start is not None and state.window is not None
            self._save(state, state.epoch, state.batch_index, self._epoch_start, state.window)

    def on_after_step(self, state: TrainState) -> None:
        crash_if_requested(f"step:{state.step}")

    def on_epoch_end(self, state: TrainState, record: EpochRecord) -> None:
        if state.should_stop or state.step <= self._last_step:
            return
        assert state.data_generator is not None
        next_order = state.data_generator.get_state()  # where the next epoch's shuffle starts
        self._save(state, state.epoch + 1, 0, next_order, MetricWindow())

    def _save(
        self,
        state: TrainState,
        epoch: int,
        batch_index: int,
        order: torch.Tensor,
        window: MetricWindow,
    ) -> None:
        payload = capture(
            state,
            epoch=epoch,
            batch_index=batch_index,
            data_order_state=order,
            window=window,
            run_dir=self.run_dir,
        )
        self.saved.append(self.store.save(payload))
        self._last_step = state.step
