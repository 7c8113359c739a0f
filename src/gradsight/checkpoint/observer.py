"""The observer that checkpoints a run every N steps and at every epoch end."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path

import torch

from gradsight.autograd.tensors import has_nonfinite
from gradsight.checkpoint.io import crash_if_requested, requested_crash_step
from gradsight.checkpoint.state import Stateful, capture
from gradsight.checkpoint.store import CheckpointSettings, CheckpointStore
from gradsight.errors import CheckpointError
from gradsight.train.events import EpochRecord, Observer, TrainState
from gradsight.train.progress import MetricWindow

__all__ = ["CheckpointObserver"]


class CheckpointObserver(Observer):
    """Save a resumable checkpoint every ``settings.every`` steps and at each epoch end.

    A step checkpoint is taken just before the next batch's forward pass, once the step's
    metrics are logged, so a resume neither repeats nor loses a ``metrics.jsonl`` line. Put
    it after the :class:`~gradsight.train.recorder.RunRecorder` in the observer list.

    A checkpoint is never written while a weight is NaN/Inf (possible with
    ``--on-nonfinite warn``): that save is skipped with a warning, and the last good
    checkpoint stays the newest.

    With ``settings.background`` (the default) the training thread only serializes the
    checkpoint; its files are written on one background thread while training goes on
    (:meth:`CheckpointStore.save_in_background`). At most one write is in flight: the next
    save waits for the previous one, the last epoch's checkpoint is waited for at once, so is
    a write still in flight when a run stops early (both before ``train_end``, so a failure
    makes the run's status "failed"), and ``on_train_end`` waits for any other. A write
    that failed raises its :class:`~gradsight.errors.CheckpointError` ("could not write
    checkpoint .../step-00000600.pt: [Errno 28] No space left on device") from there, so
    the run fails instead of losing it; on a run already failing or interrupted it is a
    warning, and the run's own exception goes on.

    Args:
        settings: folder, interval and how many checkpoints to keep.
        run_dir: the run folder, recorded in each checkpoint.
        observers: observers whose state is saved with each checkpoint, by name
            (``{"monitor": grad_monitor}``); restore it with ``Checkpoint.observer_state``.
    """

    def __init__(
        self,
        settings: CheckpointSettings,
        run_dir: Path,
        observers: Mapping[str, Stateful] | None = None,
    ) -> None:
        self.settings = settings
        self.run_dir = Path(run_dir)
        self.observers = dict(observers or {})
        self.refused: list[int] = []  # steps whose save was skipped: non-finite weights
        self.store = CheckpointStore(settings.directory, settings.keep)
        # checkpoints handed to the store, oldest first; with settings.background the newest
        # is complete on disk once store.wait() returns (or the next save starts)
        self.saved: list[Path] = []
        self._last_step = -1
        self._crash_step: int | None = None  # test-only CRASH_ENV "step:N", read at train start
        self._epoch_start: torch.Tensor | None = None  # data generator state, epoch start

    def on_train_start(self, state: TrainState) -> None:
        self.store.directory.mkdir(parents=True, exist_ok=True)
        self.store.remove_temp_files()
        self._last_step = state.step
        self._crash_step = requested_crash_step()

    def on_epoch_start(self, state: TrainState) -> None:
        assert state.data_generator is not None, "fit sets state.data_generator"
        self._epoch_start = state.data_generator.get_state()

    def on_before_forward(self, state: TrainState) -> None:
        every = self.settings.every
        if every and state.step % every == 0 and state.step > self._last_step:
            assert self._epoch_start is not None and state.window is not None
            self._save(state, state.epoch, state.batch_index, self._epoch_start, state.window)

    def on_after_step(self, state: TrainState) -> None:
        if state.step == self._crash_step:  # test-only: die once the writes in flight are done
            self.store.wait()
            crash_if_requested(f"step:{state.step}")

    def on_epoch_end(self, state: TrainState, record: EpochRecord) -> None:
        if state.should_stop:  # the run ends here, with no new save: a write still in flight
            self.store.wait()  # fails the run now, so summary.json does not say "stopped"
            return
        if state.step <= self._last_step:
            return
        assert state.data_generator is not None
        next_order = state.data_generator.get_state()  # where the next epoch's shuffle starts
        self._save(state, state.epoch + 1, 0, next_order, MetricWindow())
        if state.epoch >= state.config.epochs:  # the last one: on disk before train_end, so a
            self.store.wait()  # failed write fails the run before summary.json is written

    def on_train_end(self, state: TrainState, status: str) -> None:
        try:
            self.store.wait()
        except CheckpointError as exc:  # the last write failed
            if status in ("completed", "stopped"):
                raise
            # failed or interrupted: the run's own exception is the one to see
            warnings.warn(str(exc), RuntimeWarning, stacklevel=2)

    def _save(
        self,
        state: TrainState,
        epoch: int,
        batch_index: int,
        order: torch.Tensor,
        window: MetricWindow,
    ) -> None:
        bad = _nonfinite_weights(state.model)
        if bad:
            if not self.refused:  # once: later refusals only add to self.refused
                warnings.warn(
                    f"checkpoint at step {state.step} not written: NaN/Inf in "
                    f"{', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}; no checkpoint is "
                    "written while weights are non-finite, the last good one stays the newest",
                    RuntimeWarning,
                    stacklevel=2,
                )
            self.refused.append(state.step)
            return
        payload = capture(
            state,
            epoch=epoch,
            batch_index=batch_index,
            data_order_state=order,
            window=window,
            run_dir=self.run_dir,
            observers=self.observers,
        )
        if self.settings.background:
            self.saved.append(self.store.save_in_background(payload))
        else:
            self.saved.append(self.store.save(payload))
        self._last_step = state.step


def _nonfinite_weights(model: torch.nn.Module) -> list[str]:
    """Names of floating-point parameters/buffers holding NaN/Inf."""
    return [name for name, t in model.state_dict().items() if has_nonfinite(t)]
