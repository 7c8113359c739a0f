"""Build a model by name (``simple``, ``deep``) or from a user's class, sized from the data."""

from __future__ import annotations

import torch
from torch import nn

from gradsight.data.base import DatasetInfo
from gradsight.errors import ModelError
from gradsight.models.deep import DeepCNN
from gradsight.models.simple_cnn import SimpleCNN
from gradsight.models.user import import_model_class, instantiate

__all__ = ["MODELS", "build_model", "check_model_fits"]

#: Built-in models by name.
MODELS: dict[str, type[nn.Module]] = {"simple": SimpleCNN, "deep": DeepCNN}


def build_model(spec: str, info: DatasetInfo) -> nn.Module:
    """Build the model ``spec`` for images described by ``info``.

    Args:
        spec: a built-in name (``simple``, ``deep``), ``path/to/file.py:ClassName`` or
            ``package.module:ClassName``.
        info: the dataset, for ``in_channels``, ``num_classes`` and ``image_size``.

    Raises:
        ModelError: unknown name, import failure, or a constructor that cannot be called.
    """
    h, w = info.image_size
    sizes: dict[str, object] = {
        "in_channels": info.channels,
        "num_classes": info.num_classes,
        "image_size": h if h == w else (h, w),
    }
    if ":" in spec:
        return instantiate(import_model_class(spec), sizes)
    if spec not in MODELS:
        raise ModelError(
            f"unknown model '{spec}'. Valid models: {', '.join(MODELS)}, "
            "path/to/file.py:ClassName, package.module:ClassName"
        )
    return instantiate(MODELS[spec], sizes)


def check_model_fits(model: nn.Module, info: DatasetInfo, device: torch.device) -> None:
    """Run ``model`` once on a batch of zeros shaped like the data and check the logits' shape.

    The model is put in eval mode for the probe (so batch-norm statistics do not move) and
    restored afterwards; no gradient is recorded.

    Raises:
        ModelError: the forward pass fails, or the output is not ``(batch, num_classes)``.
    """
    shape = (2, info.channels, *info.image_size)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(shape, device=device))
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(
            f"{type(model).__name__} does not accept {info.name} images: input of shape "
            f"{list(shape)} (batch, channels, height, width) failed with: {first}"
        ) from exc
    finally:
        model.train(was_training)
    expected = [shape[0], info.num_classes]
    if not isinstance(out, torch.Tensor) or list(out.shape) != expected:
        got = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelError(
            f"{type(model).__name__} returned {got} for a batch of {shape[0]}; expected logits of "
            f"shape {expected} ({info.num_classes} classes in {info.name})"
        )
