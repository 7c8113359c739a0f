"""The forward and backward pass layer by layer: PyTorch's values next to NumPy's by hand."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch.nn.functional as F
from torch import Tensor, nn

from gradsight.explain.batch import ExplainBatch
from gradsight.explain.capture import retained_activations
from gradsight.explain.comparison import Comparison, compare
from gradsight.explain.rules import BACKWARD_RULES, Rule
from gradsight.numpy_ref import SimpleCNNTrace, simple_cnn_trace

__all__ = ["BackwardStep", "ForwardStep", "LayerWalk", "describe", "walk_layers"]


@dataclass(frozen=True)
class ForwardStep:
    """One layer's output in the forward pass."""

    name: str  # "conv1", "relu", ..., "loss"
    op: str  # what computed it, e.g. the module's repr
    shape: tuple[int, ...]
    comparison: Comparison | None  # NumPy's output vs PyTorch's; None for the input


@dataclass(frozen=True)
class BackwardStep:
    """One gradient of the backward pass, as autograd left it, checked against NumPy's."""

    name: str  # "dL/dlogits" for an activation, "fc.weight.grad" for a parameter
    rule: Rule
    shape: tuple[int, ...]
    norm: float  # Frobenius norm of autograd's gradient
    nonzero: float  # fraction of its entries that are not 0
    comparison: Comparison


@dataclass(frozen=True)
class LayerWalk:
    """Both passes over one batch."""

    forward: tuple[ForwardStep, ...]  # input, conv1, relu, pool, flatten, logits, loss
    loss: float
    backward: tuple[BackwardStep, ...]  # in the order backward computes them


def _size(value: int | tuple[int, ...] | str, *, kernel: bool = False) -> str:
    """Return ``3x3`` for a kernel, ``1`` for a stride or padding equal along H and W."""
    if isinstance(value, str):  # padding="same" / "valid"
        return value
    pair = (value, value) if isinstance(value, int) else tuple(value)
    return "x".join(map(str, pair)) if kernel or len(set(pair)) > 1 else str(pair[0])


def describe(module: nn.Module) -> str:
    """Describe a SimpleCNN layer from its attributes, e.g. ``Linear(3136->10)``."""
    if isinstance(module, nn.Conv2d):
        return (
            f"Conv2d({module.in_channels}->{module.out_channels}, "
            f"{_size(module.kernel_size, kernel=True)}, stride {_size(module.stride)}, "
            f"padding {_size(module.padding)})"
        )
    if isinstance(module, nn.MaxPool2d):
        return f"MaxPool2d({_size(module.kernel_size, kernel=True)}, stride {_size(module.stride)})"
    if isinstance(module, nn.Linear):
        return f"Linear({module.in_features}->{module.out_features})"
    return repr(module)


def _forward_steps(
    batch: ExplainBatch, acts: dict[str, Tensor], loss: Tensor, trace: SimpleCNNTrace
) -> tuple[ForwardStep, ...]:
    m = batch.model
    ops = {
        "conv1": describe(m.conv1),
        "relu": describe(m.relu),
        "pool": describe(m.pool),
        "flatten": "torch.flatten(x, 1)",
        "logits": describe(m.fc),
    }
    steps = [ForwardStep("input", "the images", tuple(batch.images.shape), None)]
    for name, op in ops.items():
        theirs = acts[name].detach().numpy()
        ours = trace.activations[name]
        steps.append(ForwardStep(name, op, theirs.shape, compare(f"forward {name}", ours, theirs)))
    loss_check = compare("forward loss", trace.loss, loss.item())
    steps.append(ForwardStep("loss", "cross-entropy, mean", (), loss_check))
    return tuple(steps)


def _backward_step(rule: Rule, theirs: Tensor, ours: np.ndarray) -> BackwardStep:
    name = f"{rule.key}.grad" if rule.is_parameter else f"dL/d{rule.key}"
    g = theirs.numpy()
    return BackwardStep(
        name=name,
        rule=rule,
        shape=g.shape,
        norm=float(np.linalg.norm(g)),
        nonzero=float(np.count_nonzero(g)) / g.size,
        comparison=compare(f"backward {name}", ours, g),
    )


def walk_layers(batch: ExplainBatch) -> LayerWalk:
    """Run the batch forward and backward in PyTorch and by hand in NumPy, and compare.

    The model is copied first, so ``batch.model`` keeps no gradients.
    """
    model = copy.deepcopy(batch.model)
    with retained_activations(model) as acts:
        logits = model(batch.images)  # (N, K)
    loss = F.cross_entropy(logits, batch.labels)
    loss.backward()
    params = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    trace = simple_cnn_trace(params, batch.images.numpy(), batch.labels.numpy())
    grads = {k: p.grad for k, p in model.named_parameters()}
    steps = []
    for rule in BACKWARD_RULES:
        theirs = grads[rule.key] if rule.is_parameter else acts[rule.key].grad
        assert theirs is not None  # retain_grad / requires_grad guarantee it after backward
        ours = (trace.param_grads if rule.is_parameter else trace.activation_grads)[rule.key]
        steps.append(_backward_step(rule, theirs, ours))
    forward = _forward_steps(batch, acts, loss, trace)
    return LayerWalk(forward, loss.item(), tuple(steps))
