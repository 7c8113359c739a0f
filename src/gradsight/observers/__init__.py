"""Deprecated package: its modules moved in 0.2 to :mod:`gradsight.autograd` (graph capture,
trace, statistics), :mod:`gradsight.health` (monitor and its checks) and
:mod:`gradsight.train` (run recorder, snapshot, TensorBoard). This path goes in 0.3."""

import warnings

from gradsight.train.recorder import RunRecorder
from gradsight.train.runfiles import RUN_FILES, read_metrics

__all__ = ["RUN_FILES", "RunRecorder", "read_metrics"]

warnings.warn(
    "gradsight.observers moved in gradsight 0.2: RunRecorder to gradsight.train.recorder, "
    "read_metrics and RUN_FILES to gradsight.train.runfiles, the rest to gradsight.autograd "
    "and gradsight.health (the old path goes in 0.3)",
    DeprecationWarning,
    stacklevel=2,
)
