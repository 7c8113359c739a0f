"""The article's SimpleCNN, forward and backward, composed from the NumPy ops one layer at a time.

``conv1 (3x3, stride 1, padding 1) -> relu -> pool (2x2, stride 2) -> flatten -> fc``, with
mean cross-entropy, as :class:`gradsight.models.SimpleCNN` and ``nn.CrossEntropyLoss()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from gradsight.errors import ConfigError
from gradsight.numpy_ref.conv import conv2d_backward, conv2d_forward
from gradsight.numpy_ref.cross_entropy import softmax_cross_entropy
from gradsight.numpy_ref.flatten import flatten_backward, flatten_forward
from gradsight.numpy_ref.linear import linear_backward, linear_forward
from gradsight.numpy_ref.maxpool import maxpool2d_backward, maxpool2d_forward
from gradsight.numpy_ref.relu import relu_backward, relu_forward

__all__ = [
    "ACTIVATION_NAMES",
    "PARAM_NAMES",
    "SimpleCNNTrace",
    "simple_cnn_forward_backward",
    "simple_cnn_trace",
]

#: The keys of a SimpleCNN ``state_dict``, in the order the layers use them.
PARAM_NAMES = ("conv1.weight", "conv1.bias", "fc.weight", "fc.bias")
#: Each layer's output, in forward order (``input`` is the batch itself).
ACTIVATION_NAMES = ("input", "conv1", "relu", "pool", "flatten", "logits")


@dataclass(frozen=True, eq=False)
class SimpleCNNTrace:
    """Every value of one forward and backward pass, for a layer-by-layer comparison."""

    loss: float
    activations: Mapping[str, np.ndarray]  # ACTIVATION_NAMES -> the layer's output
    activation_grads: Mapping[str, np.ndarray]  # ACTIVATION_NAMES -> dL/d(that output)
    param_grads: Mapping[str, np.ndarray]  # PARAM_NAMES -> dL/d(parameter)


def _check_params(params: Mapping[str, np.ndarray]) -> None:
    missing = [k for k in PARAM_NAMES if k not in params]
    if missing:
        raise ConfigError(
            f"SimpleCNN parameters lack {', '.join(missing)}; pass a SimpleCNN state_dict as "
            f"NumPy arrays with the keys {', '.join(PARAM_NAMES)}"
        )


def simple_cnn_trace(
    params: Mapping[str, np.ndarray], x: np.ndarray, labels: np.ndarray
) -> SimpleCNNTrace:
    """Run SimpleCNN forward and backward by hand and keep every intermediate value.

    Args:
        params: a SimpleCNN ``state_dict`` as NumPy arrays (keys :data:`PARAM_NAMES`).
        x: images (N, C, H, W).
        labels: class indices (N,).

    Returns:
        The loss, each layer's output and gradient, and the parameters' gradients.

    Raises:
        ConfigError: missing parameters or shapes that do not fit.
    """
    _check_params(params)
    conv, conv_cache = conv2d_forward(x, params["conv1.weight"], params["conv1.bias"], 1, 1)
    relu, relu_cache = relu_forward(conv)  # (N, 16, H, W)
    pool, pool_cache = maxpool2d_forward(relu, kernel=2, stride=2)  # (N, 16, H/2, W/2)
    flat, flat_cache = flatten_forward(pool)  # (N, 16 * H/2 * W/2)
    logits, fc_cache = linear_forward(flat, params["fc.weight"], params["fc.bias"])  # (N, K)
    loss, dlogits = softmax_cross_entropy(logits, labels)

    dflat, dw_fc, db_fc = linear_backward(dlogits, fc_cache)
    dpool = flatten_backward(dflat, flat_cache)
    drelu = maxpool2d_backward(dpool, pool_cache)
    dconv = relu_backward(drelu, relu_cache)
    dx, dw_conv, db_conv = conv2d_backward(dconv, conv_cache)

    values = (x, conv, relu, pool, flat, logits)
    grads = (dx, dconv, drelu, dpool, dflat, dlogits)
    return SimpleCNNTrace(
        loss=loss,
        activations=dict(zip(ACTIVATION_NAMES, values, strict=True)),
        activation_grads=dict(zip(ACTIVATION_NAMES, grads, strict=True)),
        param_grads=dict(zip(PARAM_NAMES, (dw_conv, db_conv, dw_fc, db_fc), strict=True)),
    )


def simple_cnn_forward_backward(
    params: Mapping[str, np.ndarray], x: np.ndarray, labels: np.ndarray
) -> tuple[float, dict[str, np.ndarray]]:
    """Return SimpleCNN's mean cross-entropy loss on ``(x, labels)`` and every parameter's grad.

    The NumPy twin of ``loss = CrossEntropyLoss()(model(x), labels); loss.backward()``.

    Args:
        params: a SimpleCNN ``state_dict`` as NumPy arrays (keys :data:`PARAM_NAMES`).
        x: images (N, C, H, W).
        labels: class indices (N,).

    Returns:
        ``(loss, grads)`` with ``grads`` keyed like ``params``.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> params = {"conv1.weight": rng.normal(size=(16, 1, 3, 3)), "conv1.bias": np.zeros(16),
    ...           "fc.weight": rng.normal(size=(10, 16 * 4 * 4)), "fc.bias": np.zeros(10)}
    >>> loss, grads = simple_cnn_forward_backward(params, rng.normal(size=(2, 1, 8, 8)),
    ...                                           np.array([3, 7]))
    >>> {k: g.shape for k, g in grads.items()}["fc.weight"]
    (10, 256)
    """
    trace = simple_cnn_trace(params, x, labels)
    return trace.loss, dict(trace.param_grads)
