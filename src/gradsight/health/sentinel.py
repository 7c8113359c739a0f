"""Follow NaN/Inf through a forward pass back to the torch function that made it.

A ``TorchFunctionMode`` sees every torch function call. For each output holding NaN/Inf it
records where that value was born: the call itself when its tensor inputs held none (or the
output holds NaN and its inputs only Inf, as a softmax over a fully masked row does), else
the birth its non-finite input carries. Forward pre-/post-hooks on every module, the root
included, keep the stack of running modules, so each birth names the innermost module whose
own ``forward`` code made the call (``""`` for the root model's; None outside the model, in
the loss). It is costly, so the monitor turns it on only for sentinel steps (the first one,
then every N) and for the replay of a failing batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode
from torch.utils.weak import WeakIdKeyDictionary

from gradsight.autograd.attribution import unwrap
from gradsight.autograd.handles import HookHandle
from gradsight.autograd.tensors import has_nonfinite, tensors_in

__all__ = ["NonFiniteSentinel", "SentinelHit"]


@dataclass(frozen=True)
class SentinelHit:
    """A torch function that turned values without NaN/Inf into NaN/Inf, and where it ran.

    ``module`` is the qualified name of the innermost module running it (``""``: the
    root model's own ``forward``; None: outside the model); ``module_type`` its class name.
    """

    op: str
    module: str | None
    module_type: str | None = None


def op_name(func: Any) -> str:
    """The torch function's name as a user wrote it: ``x + y`` and ``x += y`` are ``add``."""
    name = str(getattr(func, "__name__", func)).strip("_")
    if name.startswith(("r", "i")) and name[1:] in _OPERATORS:
        name = name[1:]  # __radd__, __iadd__
    return {"truediv": "div", "floordiv": "floor_divide"}.get(name, name).rstrip("_")


_OPERATORS = {"add", "sub", "mul", "truediv", "floordiv", "matmul", "pow", "mod"}


def _intended(args: Any, kwargs: Any) -> bool:
    """Whether an infinite Python number was passed (``masked_fill(mask, -inf)``,
    ``torch.full(size, -inf)``): Inf made on purpose, as attention masks are."""
    values = [*args, *kwargs.values()] if isinstance(args, (tuple, list)) else [args]
    return any(isinstance(v, float) and v in (float("inf"), float("-inf")) for v in values)


@dataclass(frozen=True)
class _Seen:
    """What a tensor holds: the birth of its NaN/Inf (None: none), and whether it holds
    NaN, and whether its NaN/Inf was made on purpose."""

    birth: SentinelHit | None
    nan: bool
    intended: bool


def _has_nan(t: Tensor) -> bool:
    return t.is_floating_point() and bool(torch.isnan(t).any())


class _Mode(TorchFunctionMode):
    def __init__(self, sentinel: NonFiniteSentinel) -> None:
        super().__init__()
        self.sentinel = sentinel

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if not self.sentinel.paused:
            self.sentinel._record(func, args, kwargs, out)
        return out


class NonFiniteSentinel:
    """Watch forward passes; name where each NaN/Inf was born.

    ``hit`` is the first birth that was not made on purpose (an infinite Python number
    passed to ``masked_fill`` or ``full`` is), or None; :meth:`origin` names the birth of
    the NaN/Inf inside a given tensor (the loss, say). Use it as a context manager; its
    hooks and mode are removed on exit.

    >>> model = torch.nn.Linear(2, 2)
    >>> with NonFiniteSentinel(model) as sentinel:
    ...     loss = torch.log(model(torch.ones(1, 2)) - 100).sum()
    >>> sentinel.hit.op, sentinel.origin(loss)
    ('log', SentinelHit(op='log', module=None, module_type=None))
    """

    def __init__(self, model: nn.Module) -> None:
        self.hit: SentinelHit | None = None
        # (qualified name, class name) of the running modules. Not torch.utils.module_tracker:
        # its ``parents`` is a set (no innermost module), named by class path rather than
        # qualified name, and it puts multi-grad hooks on every module's inputs and outputs,
        # i.e. hooks inside the very backward pass a sentinel step also traces.
        self.stack: list[tuple[str, str]] = []
        self.paused = False
        # tensor -> what it held when last made or read (_Seen)
        self._seen: WeakIdKeyDictionary = WeakIdKeyDictionary()
        self._handle = HookHandle()
        for name, module in unwrap(model).named_modules():
            self._handle.add(module.register_forward_pre_hook(self._push(name)))
            self._handle.add(module.register_forward_hook(self._pop))
        self._mode = _Mode(self)

    def _push(self, name: str) -> Any:
        def pre(module: nn.Module, args: Any) -> None:
            self.stack.append((name, type(module).__name__))

        return pre

    def _pop(self, module: nn.Module, args: Any, output: Any) -> None:
        if self.stack:
            self.stack.pop()

    def _state(self, t: Tensor) -> _Seen:
        """What is known of a tensor. One not made under the mode (a buffer, a weight, the
        batch) is looked at once; NaN/Inf in it counts as put there on purpose (a -inf
        attention-mask buffer), born where it was first read."""
        known = self._seen.get(t)
        if known is None:
            bad = has_nonfinite(t)
            where = self.stack[-1] if self.stack else (None, None)
            known = _Seen(SentinelHit("input", *where) if bad else None, bad and _has_nan(t), bad)
            self._seen[t] = known
        return known

    def _record(self, func: Any, args: Any, kwargs: Any, out: Any) -> None:
        outputs = [t for t in tensors_in(out) if t.is_floating_point()]
        if not outputs:
            return
        self.paused = True  # our own reductions below must not be recorded
        try:
            bad = [t for t in outputs if has_nonfinite(t)]
            seen = _Seen(None, False, False)
            if bad:
                inputs = [self._state(t) for t in tensors_in((args, kwargs))]
                seen = self._carry(func, args, kwargs, inputs, any(_has_nan(t) for t in bad))
            bad_ids = {id(t) for t in bad}
            for t in outputs:
                self._seen[t] = seen if id(t) in bad_ids else _Seen(None, False, False)
        finally:
            self.paused = False

    def _carry(self, func: Any, args: Any, kwargs: Any, inputs: list[_Seen], nan: bool) -> _Seen:
        """Where the NaN/Inf of an output was born: carried in by an input, or here.

        An input's NaN/Inf made on purpose (a -inf mask) carries over only while it stays
        what it was; NaN made from it (a softmax over a fully masked row) is born here.
        """
        carried = [s for s in inputs if s.birth is not None]
        accidental = [s for s in carried if not s.intended]
        if accidental:  # prefer one that carries the NaN the output holds
            source = next((s for s in accidental if s.nan or not nan), accidental[0])
            return _Seen(source.birth, nan, False)
        kept = [s for s in carried if s.nan or not nan]  # no new kind of value
        if kept:
            return _Seen(kept[0].birth, nan, True)
        intended = not nan and _intended(args, kwargs)
        birth = self._birth(func)
        if self.hit is None and not intended:
            self.hit = birth
        return _Seen(birth, nan, intended)

    def _birth(self, func: Any) -> SentinelHit:
        module, kind = self.stack[-1] if self.stack else (None, None)
        return SentinelHit(op_name(func), module, kind)

    def origin(self, value: Any) -> SentinelHit | None:
        """The birth of the first NaN/Inf in ``value`` (tensors, tuples, dicts), if known.

        ``op`` is ``"input"`` when the value came from outside the watched pass
        (a weight, a buffer, the batch).
        """
        for t in tensors_in(value):
            seen = self._seen.get(t) if t.is_floating_point() else None
            if seen is not None and seen.birth is not None:
                return seen.birth
        return None

    def __enter__(self) -> NonFiniteSentinel:
        self._mode.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._mode.__exit__(None, None, None)
        self._handle.remove()
