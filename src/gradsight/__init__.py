"""gradsight: make backpropagation in a PyTorch CNN visible, and catch the gradient that breaks
a training run."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("gradsight")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+unknown"

from gradsight.config import TrainConfig
from gradsight.errors import (
    ConfigError,
    DataError,
    DeviceError,
    GradsightError,
    ModelError,
)
from gradsight.models import DeepCNN, SimpleCNN, build_model

__all__ = [
    "ConfigError",
    "DataError",
    "DeepCNN",
    "DeviceError",
    "GradsightError",
    "ModelError",
    "SimpleCNN",
    "TrainConfig",
    "__version__",
    "build_model",
]
