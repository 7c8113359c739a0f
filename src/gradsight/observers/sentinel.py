"""Catch the first torch operation whose output holds NaN/Inf during a forward pass.

A ``TorchFunctionMode`` sees every torch function call; forward pre-hooks keep a stack of
the modules being run so the culprit can be named. It is costly, so the monitor turns it
on only for sentinel steps (the first one, then every N).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn
from torch.overrides import TorchFunctionMode

from gradsight.observers.handles import HookHandle
from gradsight.observers.modules import has_nonfinite

__all__ = ["NonFiniteSentinel", "SentinelHit"]


@dataclass(frozen=True)
class SentinelHit:
    """The first op with a non-finite output, and the module running it."""

    op: str
    module: str | None


class _Mode(TorchFunctionMode):
    def __init__(self, sentinel: NonFiniteSentinel) -> None:
        super().__init__()
        self.sentinel = sentinel

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        if self.sentinel.hit is None and has_nonfinite(out):
            stack = self.sentinel.stack
            name = getattr(func, "__name__", str(func))
            self.sentinel.hit = SentinelHit(name, stack[-1] if stack else None)
        return out


class NonFiniteSentinel:
    """Watch one forward pass; ``hit`` names the first op that produced NaN/Inf, or is None.

    >>> model = torch.nn.Linear(2, 2)
    >>> with NonFiniteSentinel(model) as sentinel:
    ...     _ = torch.log(model(torch.ones(1, 2)) - 100)
    >>> sentinel.hit.op
    'log'
    """

    def __init__(self, model: nn.Module) -> None:
        self.hit: SentinelHit | None = None
        self.stack: list[str] = []
        self._handle = HookHandle()
        for name, module in model.named_modules():
            if name:
                self._handle.add(module.register_forward_pre_hook(self._push(name)))
                self._handle.add(module.register_forward_hook(self._pop))
        self._mode = _Mode(self)

    def _push(self, name: str) -> Any:
        def pre(module: nn.Module, args: Any) -> None:
            self.stack.append(name)

        return pre

    def _pop(self, module: nn.Module, args: Any, output: Any) -> None:
        if self.stack:
            self.stack.pop()

    def __enter__(self) -> NonFiniteSentinel:
        self._mode.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._mode.__exit__(None, None, None)
        self._handle.remove()
