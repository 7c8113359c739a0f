"""Attribute autograd nodes to the module whose forward created them, with forward hooks.

Forward hooks read tensors and their ``grad_fn``; they add no node to the autograd graph
(unlike ``register_full_backward_hook``), so the graph we later show is the real one.
"""

from __future__ import annotations

from typing import Any

from torch import nn
from torch.autograd.graph import Node

from gradsight.autograd.handles import HookHandle
from gradsight.autograd.tensors import grad_fns

__all__ = ["ModuleAttribution", "is_compiled", "module_type", "unwrap"]


def unwrap(model: nn.Module) -> nn.Module:
    """Return the module a ``torch.compile`` or (Distributed)DataParallel wrapper holds
    (``model`` itself if none).

    Its parameter names carry no ``_orig_mod.`` or ``module.`` prefix, hooks on it see the
    eager forward, when one runs, and a forward through it runs none of DDP's collectives.
    """
    while True:
        if isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod  # type: ignore[assignment]
        elif isinstance(model, nn.DataParallel | nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model


def module_type(model: nn.Module, name: str | None) -> str | None:
    """The class name of ``model``'s submodule ``name`` (``""``: the model), or None."""
    try:
        return None if name is None else type(unwrap(model).get_submodule(name)).__name__
    except AttributeError:
        return None


def is_compiled(model: nn.Module) -> bool:
    """Whether ``model`` is a ``torch.compile`` wrapper."""
    return unwrap(model) is not model


class ModuleAttribution:
    """Record, for each autograd node a forward pass creates, the innermost module that made it.

    A pre-hook notes the ``grad_fn`` of a module's inputs; the forward hook walks back from
    the outputs' ``grad_fn`` to those inputs (through nodes inner modules claimed) and claims
    every node not yet claimed. Inner
    modules finish first, so each node goes to the innermost module; nodes made in the root
    module's own ``forward`` (a ``torch.flatten`` call, say) map to ``""``.

    Use it as a context manager around the forward pass; its hooks are removed on exit.

    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU())
    >>> with ModuleAttribution(model) as tracker:
    ...     out = model(torch.randn(4, 3))
    >>> tracker.module_of(out.grad_fn)
    '1'
    """

    def __init__(self, model: nn.Module) -> None:
        model = unwrap(model)  # a compiled model's modules, by their own names
        self.model = model
        self.owner: dict[Node, str] = {}
        self.call: dict[Node, int] = {}  # which call of its module made the node (0, 1, ...)
        self._calls: dict[str, int] = {}
        self._boundaries: list[set[Node]] = []
        self._handle = HookHandle()
        for name, module in model.named_modules():
            self._handle.add(module.register_forward_pre_hook(self._pre_hook, with_kwargs=True))
            self._handle.add(module.register_forward_hook(self._make_hook(name)))

    def _pre_hook(self, module: nn.Module, args: Any, kwargs: Any) -> None:
        self._boundaries.append(set(grad_fns(args)) | set(grad_fns(kwargs)))

    def _make_hook(self, name: str) -> Any:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            boundary = self._boundaries.pop() if self._boundaries else set()
            call = self._calls.get(name, 0)
            self._calls[name] = call + 1
            self._claim(list(grad_fns(output)), boundary, name, call)

        return hook

    def _claim(self, stack: list[Node], boundary: set[Node], name: str, call: int) -> None:
        seen: set[Node] = set()
        while stack:
            node = stack.pop()
            if node in boundary or node in seen or type(node).__name__ == "AccumulateGrad":
                continue
            seen.add(node)
            if node not in self.owner:  # inner modules ran first and keep their nodes
                self.owner[node], self.call[node] = name, call
            stack.extend(nxt for nxt, _ in node.next_functions if nxt is not None)

    def module_of(self, node: Node) -> str | None:
        """Return the qualified name of the module that created ``node``, or None if unknown."""
        return self.owner.get(node)

    def call_of(self, node: Node) -> int:
        """Return which call of its module created ``node`` (0 for the first; a ResNet block
        calls its ``relu`` twice)."""
        return self.call.get(node, 0)

    def remove(self) -> None:
        """Remove the forward hooks; the recorded attribution stays readable."""
        self._handle.remove()

    def __enter__(self) -> ModuleAttribution:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()
