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
    from gradsight.config import TrainConfig
    from gradsight.errors import ConfigError, DataError, DeviceError, GradsightError, ModelError
    from gradsight.models import DeepCNN, SimpleCNN, build_model
    from gradsight.observers.findings import Finding
    from gradsight.observers.graph import capture_backward, capture_graph
    from gradsight.observers.monitor import GradMonitor, MonitorConfig
    from gradsight.observers.trace import trace_backward

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
    "Finding": "gradsight.observers.findings",
    "GradMonitor": "gradsight.observers.monitor",
    "MonitorConfig": "gradsight.observers.monitor",
    "capture_graph": "gradsight.observers.graph",
    "capture_backward": "gradsight.observers.graph",
    "trace_backward": "gradsight.observers.trace",
}

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
    "__version__",
    "build_model",
    "capture_backward",
    "capture_graph",
    "trace_backward",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gradsight' has no attribute {name!r}")
