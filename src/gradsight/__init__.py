"""gradsight: make backpropagation in a PyTorch CNN visible, and catch the gradient that breaks
a training run.

The names below load on first use (PEP 562), so ``import gradsight.numpy_ref`` stays free of
torch.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("gradsight")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+unknown"

if TYPE_CHECKING:
    from gradsight.autograd.capture import capture_backward, capture_graph
    from gradsight.autograd.trace import trace_backward
    from gradsight.config import TrainConfig
    from gradsight.errors import ConfigError, DataError, DeviceError, GradsightError, ModelError
    from gradsight.health.findings import Finding
    from gradsight.health.monitor import GradMonitor, MonitorConfig
    from gradsight.models import DeepCNN, SimpleCNN, build_model
    from gradsight.preflight import check
    from gradsight.session import WatchedRun, watch
    from gradsight.train import fit, prepare

_LAZY = {
    "TrainConfig": "gradsight.config",
    "ConfigError": "gradsight.errors",
    "DataError": "gradsight.errors",
    "DeviceError": "gradsight.errors",
    "GradsightError": "gradsight.errors",
    "ModelError": "gradsight.errors",
    "DeepCNN": "gradsight.models",
    "SimpleCNN": "gradsight.models",
    "build_model": "gradsight.models",
    "check": "gradsight.preflight",
    "Finding": "gradsight.health.findings",
    "GradMonitor": "gradsight.health.monitor",
    "MonitorConfig": "gradsight.health.monitor",
    "capture_graph": "gradsight.autograd.capture",
    "capture_backward": "gradsight.autograd.capture",
    "trace_backward": "gradsight.autograd.trace",
    "prepare": "gradsight.train",
    "fit": "gradsight.train",
    "watch": "gradsight.session",
    "WatchedRun": "gradsight.session",
}

#: Names whose results Jupyter displays through gradsight.reports.notebook.
_SHOWN = {"capture_graph", "capture_backward", "trace_backward", "GradMonitor", "Finding",
          "watch", "WatchedRun", "fit"}  # fmt: skip

__all__ = [
    "ConfigError",
    "DataError",
    "DeepCNN",
    "DeviceError",
    "Finding",
    "GradMonitor",
    "GradsightError",
    "ModelError",
    "MonitorConfig",
    "SimpleCNN",
    "TrainConfig",
    "WatchedRun",
    "__version__",
    "build_model",
    "capture_backward",
    "capture_graph",
    "check",
    "fit",
    "prepare",
    "trace_backward",
    "watch",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        if name in _SHOWN:  # what they make then shows in Jupyter (SVG, tables)
            import_module("gradsight.reports.notebook")
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gradsight' has no attribute {name!r}")
