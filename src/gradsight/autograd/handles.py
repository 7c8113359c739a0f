"""A removable handle for the hooks an observer attaches; also a context manager."""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType
from typing import Protocol

__all__ = ["HookHandle"]


class _Removable(Protocol):
    def remove(self) -> None: ...


class HookHandle:
    """Own a group of torch hook handles and remove them all at once.

    ``remove()`` may be called more than once. Used as a context manager, the hooks are
    removed on exit, also when the block raises.

    >>> import torch
    >>> lin = torch.nn.Linear(2, 2)
    >>> with HookHandle([lin.register_forward_hook(lambda m, i, o: None)]):
    ...     _ = lin(torch.zeros(1, 2))
    >>> len(lin._forward_hooks)
    0
    """

    def __init__(self, handles: Iterable[_Removable] = ()) -> None:
        self._handles = list(handles)

    def add(self, handle: _Removable) -> None:
        """Take ownership of one more torch handle."""
        self._handles.append(handle)

    def remove(self) -> None:
        """Remove every hook this handle owns."""
        while self._handles:
            self._handles.pop().remove()

    def __enter__(self) -> HookHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.remove()
