"""Observers: things that watch the training loop through its events."""

from gradsight.observers.recorder import RUN_FILES, RunRecorder, read_metrics

__all__ = ["RUN_FILES", "RunRecorder", "read_metrics"]
