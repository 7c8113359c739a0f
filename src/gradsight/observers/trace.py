"""Replay ``loss.backward()`` node by node, in the order the autograd engine runs it.

Hooks go on the graph's existing nodes (``Node.register_prehook`` and ``register_hook``):
nothing is added to the graph and every ``.grad`` is bit-identical to an untraced
backward. Each node that runs becomes a :class:`TraceEvent` with the gradients it received
and produced, its time, and a one-line explanation computed from the real tensors.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from torch import Tensor, nn
from torch.autograd.graph import Node

from gradsight.observers.graph import AutogradGraph, GradStats, GraphCapture, grad_stats
from gradsight.observers.handles import HookHandle
from gradsight.observers.modules import ModuleTracker
from gradsight.observers.trace_explain import explain, facts_before

__all__ = ["BackwardTrace", "BackwardTracer", "TraceEvent", "trace_backward"]


@dataclass(frozen=True)
class TraceEvent:
    """One backward node as it ran."""

    index: int  # 0-based position in execution order
    node_id: str  # the node's id in the captured graph ("n7")
    name: str  # "ReluBackward0", "AccumulateGrad"
    module: str | None
    param: str | None  # for AccumulateGrad: the parameter's qualified name
    received: tuple[GradStats | None, ...]  # gradient(s) w.r.t. the forward op's output(s)
    produced: tuple[GradStats | None, ...]  # gradients w.r.t. its inputs; AccumulateGrad: .grad
    seconds: float  # time inside the node (excludes gradsight's own measurements)
    explanation: str


@dataclass
class BackwardTrace:
    """A traced backward pass: events in execution order and the graph with its gradients."""

    events: list[TraceEvent]
    graph: AutogradGraph
    seconds: float  # wall time of the whole traced backward

    def steps(self) -> dict[str, int]:
        """Map each graph node id to its 0-based step in the backward pass."""
        return {e.node_id: e.index for e in self.events}


class BackwardTracer:
    """Trace the next ``backward()`` through ``loss``'s graph; use as a context manager.

    The hooks are removed on exit, also if the block raises. Read the result from
    :attr:`trace` after the block.

    Args:
        loss: the tensor ``backward()`` will start from.
        model: names the parameters; lists the ones that got no gradient.
        modules: a :class:`ModuleTracker` that watched the forward, for op -> module names.
        detail: ``"full"`` measures each gradient's L2 norm, max |g|, zeros and NaN/Inf
            count, and the facts behind the explanations (ReLU and max-pool coverage);
            ``"norm"`` only the L2 norm and NaN/Inf, for a cheaper trace.

    >>> import torch
    >>> w = torch.ones(3, requires_grad=True)
    >>> loss = (w * 2).relu().sum()
    >>> with BackwardTracer(loss) as tracer:
    ...     loss.backward()
    >>> [e.name for e in tracer.trace.events]
    ['SumBackward0', 'ReluBackward0', 'MulBackward0', 'AccumulateGrad']
    """

    def __init__(
        self,
        loss: Tensor,
        model: nn.Module | None = None,
        modules: ModuleTracker | None = None,
        detail: str = "full",
    ) -> None:
        if detail not in ("full", "norm"):
            raise ValueError(f"detail must be 'full' or 'norm', not {detail!r}")
        self._full = detail == "full"
        self._capture = GraphCapture(loss, model, modules, saved=self._full)
        self._leaf_stats: dict[str, GradStats | None] = {}
        self._events: list[TraceEvent] = []
        self._pending: dict[str, tuple[dict[str, Any], GradStats | None, bool, float]] = {}
        self._sent: dict[str, list[GradStats | None]] = {}  # dst id -> stats sent to it
        self._started: float | None = None
        self._seconds = 0.0
        self._handle = HookHandle()
        for node, nid in self._capture.node_ids.items():
            self._handle.add(node.register_prehook(self._make_prehook(node, nid)))
            self._handle.add(node.register_hook(self._make_hook(node, nid)))

    def _make_prehook(self, node: Node, nid: str) -> Any:
        def prehook(grad_outputs: tuple[Tensor | None, ...]) -> None:
            if self._started is None:
                self._started = time.perf_counter()
            variable = getattr(node, "variable", None)
            accumulated = isinstance(variable, Tensor) and variable.grad is not None
            sent = self._sent.pop(nid, [])
            if len(sent) == 1 and len(grad_outputs) == 1 and self._single_input(nid):
                received = sent[0]  # the very tensor its one producer sent: measured already
            else:
                received = grad_stats(grad_outputs[0], self._full) if grad_outputs else None
            facts = facts_before(node) if self._full else {}
            self._pending[nid] = (facts, received, accumulated, time.perf_counter())

        return prehook

    def _single_input(self, nid: str) -> bool:
        return nid != "n0" and self._capture.in_degree.get(nid, 0) == 1

    def _make_hook(self, node: Node, nid: str) -> Any:
        def hook(
            grad_inputs: tuple[Tensor | None, ...], grad_outputs: tuple[Tensor | None, ...]
        ) -> None:
            stop = time.perf_counter()
            facts, received, accumulated, start = self._pending.pop(nid)
            graph_node = self._capture.node(nid)
            param = graph_node.name if graph_node.kind == "param" else None
            variable = getattr(node, "variable", None)
            if isinstance(variable, Tensor):  # AccumulateGrad: report the stored .grad
                fresh = not accumulated and received is not None  # .grad now equals what came in
                produced = [received if fresh else grad_stats(variable.grad, self._full)]
                name = "AccumulateGrad"
                self._leaf_stats[nid] = produced[0]
            else:
                produced = [grad_stats(g, self._full) for g in grad_inputs]
                name = graph_node.name
                self._capture.record(nid, received, produced)
                for k, dst in self._capture.destinations(nid).items():
                    if k < len(produced):
                        self._sent.setdefault(dst, []).append(produced[k])
            self._events.append(
                TraceEvent(
                    len(self._events), nid, name, graph_node.module, param, (received,),
                    tuple(produced), stop - start,
                    explain(name, facts, received, produced, param, accumulated),
                )
            )  # fmt: skip
            self._seconds = time.perf_counter() - (self._started or stop)

        return hook

    def remove(self) -> None:
        """Remove every hook; the events recorded so far stay readable."""
        self._handle.remove()

    def __enter__(self) -> BackwardTracer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.remove()

    @property
    def trace(self) -> BackwardTrace:
        """The events so far, and the graph with the gradients seen so far."""
        self._capture._fill_params(self._leaf_stats)
        return BackwardTrace(list(self._events), self._capture.graph, self._seconds)


def trace_backward(
    loss: Tensor,
    model: nn.Module | None = None,
    modules: ModuleTracker | None = None,
    retain_graph: bool = False,
    detail: str = "full",
) -> BackwardTrace:
    """Run ``loss.backward()`` under a :class:`BackwardTracer` and return the trace.

    The resulting ``.grad`` values are bit-identical to those of a plain ``loss.backward()``.
    ``detail`` is ``"full"`` or ``"norm"``, as for :class:`BackwardTracer`.
    """
    with BackwardTracer(loss, model, modules, detail) as tracer:
        loss.backward(retain_graph=retain_graph)
    return tracer.trace
