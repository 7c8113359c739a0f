"""The whole SimpleCNN by hand against ``loss.backward()``: every parameter, every layer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gradsight.errors import ConfigError
from gradsight.models import SimpleCNN
from gradsight.numpy_ref import (
    ACTIVATION_NAMES,
    PARAM_NAMES,
    gradcheck,
    simple_cnn_forward_backward,
    simple_cnn_trace,
)

from .helpers import TOLERANCE, assert_matches

TORCH_DTYPE = {np.float64: torch.float64, np.float32: torch.float32}


def _model_and_batch(
    channels: int, size: int, dtype: type, n: int = 8
) -> tuple[SimpleCNN, torch.Tensor, torch.Tensor]:
    torch.manual_seed(channels * 100 + size)
    model = SimpleCNN(channels, 10, size).to(TORCH_DTYPE[dtype])
    x = torch.randn(n, channels, size, size, dtype=TORCH_DTYPE[dtype])
    return model, x, torch.randint(0, 10, (n,))


def _numpy_params(model: SimpleCNN) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("channels", "size"), [(3, 32), (1, 28)])
def test_all_four_gradients_match_loss_backward(channels: int, size: int, dtype: type) -> None:
    model, x, y = _model_and_batch(channels, size, dtype)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    my_loss, grads = simple_cnn_forward_backward(_numpy_params(model), x.numpy(), y.numpy())
    assert abs(my_loss - loss.item()) <= TOLERANCE[dtype] * abs(loss.item())
    assert sorted(grads) == sorted(PARAM_NAMES)
    for name, param in model.named_parameters():
        assert param.grad is not None
        assert_matches(grads[name], param.grad.numpy(), dtype)
    if (channels, size) == (3, 32):  # the article's shapes
        assert grads["conv1.weight"].shape == (16, 3, 3, 3)
        assert grads["fc.weight"].shape == (10, 4096)


def test_every_layer_matches_autograd_float64() -> None:
    model, x, y = _model_and_batch(1, 28, np.float64, n=4)
    x.requires_grad_(True)
    conv = model.conv1(x)
    relu = model.relu(conv)
    pool = model.pool(relu)
    flat = torch.flatten(pool, 1)
    logits = model.fc(flat)
    theirs = dict(zip(ACTIVATION_NAMES, (x, conv, relu, pool, flat, logits), strict=True))
    for t in theirs.values():
        t.retain_grad()
    F.cross_entropy(logits, y).backward()
    trace = simple_cnn_trace(_numpy_params(model), x.detach().numpy(), y.numpy())
    for name, t in theirs.items():
        assert t.grad is not None
        assert_matches(trace.activations[name], t.detach().numpy(), np.float64)
        assert_matches(trace.activation_grads[name], t.grad.numpy(), np.float64)
    assert trace.activations["pool"].shape == (4, 16, 14, 14)


def test_gradcheck_whole_network() -> None:
    rng = np.random.default_rng(0)
    labels = np.array([1, 0, 2])
    x = rng.normal(size=(3, 1, 4, 4))
    params = [rng.normal(size=s) for s in ((16, 1, 3, 3), (16,), (3, 64), (3,))]

    def loss_and_grads(*arrays: np.ndarray) -> tuple[float, list[np.ndarray]]:
        trace = simple_cnn_trace(dict(zip(PARAM_NAMES, arrays[1:], strict=True)), arrays[0], labels)
        return trace.loss, [trace.activation_grads["input"], *trace.param_grads.values()]

    result = gradcheck(loss_and_grads, [x, *params])
    assert result.passed, result


def test_missing_parameter_raises() -> None:
    params = {"conv1.weight": np.zeros((16, 1, 3, 3)), "conv1.bias": np.zeros(16)}
    with pytest.raises(
        ConfigError, match=r"lack fc\.weight, fc\.bias; pass a SimpleCNN state_dict"
    ):
        simple_cnn_forward_backward(params, np.zeros((1, 1, 4, 4)), np.array([0]))
