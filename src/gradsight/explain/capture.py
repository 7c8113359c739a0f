"""Keep every SimpleCNN layer's output and, after backward, its gradient."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from torch import Tensor, nn

from gradsight.errors import ModelError

__all__ = ["retained_activations"]

#: Which module produces each activation; ``flatten`` is the fc layer's input.
_OUTPUT_OF = {"conv1": "conv1", "relu": "relu", "pool": "pool", "logits": "fc"}


@contextmanager
def retained_activations(model: nn.Module) -> Iterator[dict[str, Tensor]]:
    """Yield a dict that each forward of ``model`` fills with its layers' outputs.

    Forward hooks call ``retain_grad()`` on ``conv1``, ``relu``, ``pool``, ``flatten`` (the
    fc layer's input) and ``logits``, so after ``loss.backward()`` each tensor's ``.grad``
    holds dL/d(that output). The hooks only record: they add no node to the autograd graph.
    They are removed when the ``with`` block ends.

    Raises:
        ModelError: ``model`` lacks SimpleCNN's ``conv1``, ``relu``, ``pool`` or ``fc``.
    """
    children = dict(model.named_children())
    missing = [m for m in _OUTPUT_OF.values() if m not in children]
    if missing:
        raise ModelError(
            f"{type(model).__name__} has no {', '.join(missing)}; explain walks SimpleCNN's "
            "layers conv1, relu, pool, fc"
        )
    seen: dict[str, Tensor] = {}

    def keep(name: str, tensor: Tensor) -> None:
        tensor.retain_grad()
        seen[name] = tensor

    def output_hook(name: str) -> Callable[[nn.Module, tuple[Tensor, ...], Tensor], None]:
        return lambda _module, _inputs, output: keep(name, output)

    handles = [
        children[module].register_forward_hook(output_hook(name))
        for name, module in _OUTPUT_OF.items()
    ]
    handles.append(
        children["fc"].register_forward_pre_hook(lambda _m, inputs: keep("flatten", inputs[0]))
    )
    try:
        yield seen
    finally:
        for handle in handles:
            handle.remove()
