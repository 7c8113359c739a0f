"""Why ``optimizer.zero_grad()`` matters: ``backward`` adds into ``.grad``, never overwrites."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gradsight.explain.batch import ExplainBatch
from gradsight.explain.comparison import Comparison, compare

__all__ = ["AccumulationRow", "ZeroGradDemo", "zero_grad_demo"]


@dataclass(frozen=True)
class AccumulationRow:
    """One parameter's ``.grad`` after one, two, and zero_grad-then-one backward passes."""

    name: str
    norm_once: float
    norm_twice: float
    twice: Comparison  # .grad after two passes vs 2 x the first .grad; must be exact
    after_zero: Comparison  # .grad after zero_grad() and one pass vs the first; must be exact


@dataclass(frozen=True)
class ZeroGradDemo:
    """What accumulation does to every parameter's gradient."""

    rows: tuple[AccumulationRow, ...]
    cleared: bool  # whether optimizer.zero_grad() left every .grad as None


def _backward(model: nn.Module, batch: ExplainBatch) -> None:
    F.cross_entropy(model(batch.images), batch.labels).backward()


def _grads(model: nn.Module) -> dict[str, Tensor]:
    grads = {}
    for name, p in model.named_parameters():
        assert p.grad is not None  # called only after a backward pass
        grads[name] = p.grad.detach().clone()
    return grads


def zero_grad_demo(batch: ExplainBatch) -> ZeroGradDemo:
    """Call ``backward`` twice without ``zero_grad``, then once after it, on a model copy.

    The second pass adds the same gradient again, so ``.grad`` is exactly twice the first
    (x + x == 2x in floating point, and CPU backward is deterministic); after
    ``zero_grad()`` one pass gives the first gradient again.
    """
    model = copy.deepcopy(batch.model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # only zero_grad is used
    _backward(model, batch)
    once = _grads(model)
    _backward(model, batch)
    twice = _grads(model)
    optimizer.zero_grad()
    cleared = all(p.grad is None for p in model.parameters())
    _backward(model, batch)
    again = _grads(model)
    rows = tuple(
        AccumulationRow(
            name=name,
            norm_once=float(once[name].norm()),
            norm_twice=float(twice[name].norm()),
            twice=compare(f"zero_grad {name}: two passes", twice[name], 2 * once[name], 0.0),
            after_zero=compare(f"zero_grad {name}: after zero_grad", again[name], once[name], 0.0),
        )
        for name in once
    )
    return ZeroGradDemo(rows, cleared)
