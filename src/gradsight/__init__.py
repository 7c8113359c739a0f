"""gradsight: make backpropagation in a PyTorch CNN visible, and catch the gradient that breaks
a training run."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("gradsight")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+unknown"

from gradsight.config import TrainConfig  # noqa: E402
from gradsight.errors import (  # noqa: E402
    ConfigError,
    DataError,
    DeviceError,
    GradsightError,
    ModelError,
)
from gradsight.models import DeepCNN, SimpleCNN, build_model  # noqa: E402

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
