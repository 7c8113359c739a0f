"""Take the autograd graph of one real training step: inside ``fit`` or on its own."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import torch
from torch import nn

from gradsight.observers.graph import AutogradGraph, GraphCapture
from gradsight.observers.modules import ModuleTracker
from gradsight.train.events import Observer, TrainState
from gradsight.train.setup import Prepared

__all__ = ["GraphSnapshot", "graph_of_one_step"]


class GraphSnapshot(Observer):
    """Capture the graph of the first training step, with the gradients of its backward.

    Forward hooks watch the first forward pass (for op -> module names), then ``Node``
    hooks watch the first backward; all are removed right after. The graph is stored in
    ``self.graph`` and handed to ``on_graph`` when given. A failure here warns and never
    stops training.

    Args:
        on_graph: called once with the captured graph (e.g. to write graph.svg).
    """

    def __init__(self, on_graph: Callable[[AutogradGraph], object] | None = None) -> None:
        self.on_graph = on_graph
        self.graph: AutogradGraph | None = None
        self._tracker: ModuleTracker | None = None
        self._capture: GraphCapture | None = None
        self._hooks: AbstractContextManager[Any] | None = None

    def on_train_start(self, state: TrainState) -> None:
        self._tracker = ModuleTracker(state.model)

    def on_after_forward(self, state: TrainState) -> None:
        if self._tracker is None:
            return
        self._tracker.remove()
        try:
            assert state.loss is not None
            self._capture = GraphCapture(state.loss, state.model, self._tracker)
            self._hooks = self._capture.gradients()
            self._hooks.__enter__()
        except Exception as exc:  # observation must never break training
            warnings.warn(f"gradsight: graph capture failed: {exc}", RuntimeWarning, stacklevel=2)
            self._capture = None
        self._tracker = None

    def on_after_backward(self, state: TrainState) -> None:
        if self._hooks is None or self._capture is None:
            return
        self._hooks.__exit__(None, None, None)
        self._hooks = None
        self.graph = self._capture.graph
        self._capture = None
        if self.on_graph is not None:
            self.on_graph(self.graph)

    def on_train_end(self, state: TrainState, status: str) -> None:
        if self._tracker is not None:
            self._tracker.remove()
        if self._hooks is not None:
            self._hooks.__exit__(None, None, None)


def graph_of_one_step(prepared: Prepared, batch_size: int) -> AutogradGraph:
    """Run one training step (forward, loss, backward, optimizer step) and return its graph.

    The batch is the first of the training split shuffled with ``config.seed``.
    """
    model, optimizer = prepared.model, prepared.optimizer
    generator = torch.Generator().manual_seed(prepared.config.seed)
    batches = prepared.data.train.batches(
        batch_size, shuffle=True, generator=generator, device=prepared.device
    )
    inputs, targets = next(iter(batches))
    model.train()
    optimizer.zero_grad(set_to_none=True)
    with ModuleTracker(model) as tracker:
        outputs = model(inputs)  # (B, num_classes)
    loss = nn.functional.cross_entropy(outputs, targets)
    capture = GraphCapture(loss, model, tracker)
    with capture.gradients():
        loss.backward()
    optimizer.step()
    return capture.graph
