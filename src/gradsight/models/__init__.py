"""Models: the article's SimpleCNN, a deeper VGG-style CNN, and a user's own class."""

from gradsight.models.deep import DeepCNN
from gradsight.models.registry import MODELS, build_model, check_model_fits
from gradsight.models.simple_cnn import SimpleCNN
from gradsight.models.user import import_model_class

__all__ = [
    "MODELS",
    "DeepCNN",
    "SimpleCNN",
    "build_model",
    "check_model_fits",
    "import_model_class",
]
