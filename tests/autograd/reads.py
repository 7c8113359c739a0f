"""A dispatch mode that counts reads of tensor values into Python, shared by the trace tests."""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode


class ScalarReads(TorchDispatchMode):
    """Counts reads of a tensor's value into Python (item(), float()): a sync on a GPU."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        self.reads += func is torch.ops.aten._local_scalar_dense.default
        return func(*args, **(kwargs or {}))
