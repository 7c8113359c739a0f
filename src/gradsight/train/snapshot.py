"""Trace the first training step (graph + backward order), inside ``fit`` or on its own."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch import nn

from gradsight.autograd.attribution import ModuleAttribution
from gradsight.autograd.trace import BackwardTrace, BackwardTracer
from gradsight.train.events import Observer, TrainState
from gradsight.train.setup import Prepared

__all__ = ["FirstStepSnapshot", "trace_of_one_step"]


class FirstStepSnapshot(Observer):
    """Capture the graph and backward trace of the first training step.

    Forward hooks watch the first forward pass (for op -> module names), then ``Node``
    hooks trace the first backward; all are removed right after. The result is stored in
    ``self.trace`` and handed to ``on_snapshot`` when given. A failure here warns and never
    stops training.

    Args:
        on_snapshot: called once with the trace (e.g. to write graph.svg and trace.json).
    """

    def __init__(self, on_snapshot: Callable[[BackwardTrace], object] | None = None) -> None:
        self.on_snapshot = on_snapshot
        self.trace: BackwardTrace | None = None
        self._modules: ModuleAttribution | None = None
        self._tracer: BackwardTracer | None = None

    def on_train_start(self, state: TrainState) -> None:
        self._modules = ModuleAttribution(state.model)

    def on_after_forward(self, state: TrainState) -> None:
        if self._modules is None:
            return
        self._modules.remove()
        try:
            assert state.loss is not None
            self._tracer = BackwardTracer(state.loss, state.model, self._modules, saved=True)
        except Exception as exc:  # observation must never break training
            warnings.warn(f"graph capture failed: {exc}", RuntimeWarning, stacklevel=2)
        self._modules = None

    def on_after_backward(self, state: TrainState) -> None:
        if self._tracer is None:
            return
        self._tracer.remove()
        self.trace, self._tracer = self._tracer.trace, None
        if self.on_snapshot is not None:
            try:
                self.on_snapshot(self.trace)
            except Exception as exc:
                warnings.warn(
                    f"writing the first-step graph failed: {exc}", RuntimeWarning, stacklevel=2
                )

    def on_train_end(self, state: TrainState, status: str) -> None:
        if self._modules is not None:
            self._modules.remove()
        if self._tracer is not None:
            self._tracer.remove()


def trace_of_one_step(prepared: Prepared, batch_size: int, detail: str = "full") -> BackwardTrace:
    """Run one training step (forward, loss, traced backward, optimizer step); return its trace.

    The batch is the first of the training split shuffled with ``config.seed``; ``detail``
    is as for :class:`BackwardTracer`. The graph keeps saved-tensor metadata.
    """
    model, optimizer = prepared.model, prepared.optimizer
    generator = torch.Generator().manual_seed(prepared.config.seed)
    batches = prepared.data.train.batches(
        batch_size, shuffle=True, generator=generator, device=prepared.device
    )
    inputs, targets = next(iter(batches))
    model.train()
    optimizer.zero_grad(set_to_none=True)
    with ModuleAttribution(model) as modules:
        outputs = model(inputs)  # (B, num_classes)
    loss = nn.functional.cross_entropy(outputs, targets)
    with BackwardTracer(loss, model, modules, detail, saved=True) as tracer:
        loss.backward()
    optimizer.step()
    return tracer.trace
