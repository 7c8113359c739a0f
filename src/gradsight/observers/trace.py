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

from gradsight.observers.graph import AutogradGraph, GradStats, GraphCapture, Scratch, grad_stats
from gradsight.observers.handles import HookHandle
from gradsight.observers.modules import ModuleTracker
from gradsight.observers.trace_explain import explain, facts_before, needs_facts

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
    seconds: float  # time since gradsight's previous hook: the node and the engine's work
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


@dataclass(frozen=True)
class _Record:
    """What one node's hook measured; turned into a :class:`TraceEvent` when read."""

    nid: str
    received: GradStats | None
    produced: tuple[GradStats | None, ...]
    accumulated: bool
    seconds: float


class BackwardTracer:
    """Trace the next ``backward()`` through ``loss``'s graph; use as a context manager.

    The hooks are removed on exit, also if the block raises. Read the result from
    :attr:`trace` after the block.

    Each node gets one post-hook (``Node.register_hook``), which measures what the node
    received and produced; the root, and in full detail the nodes whose explanation needs
    their saved tensors (ReLU, max-pool), also get a pre-hook. A node's time is the wall
    time from the end of the previous gradsight hook to the start of its own, so
    gradsight's measurements are not counted. A gradient that one node sends and the next
    receives, or that a view passes on unchanged, is measured once. Explanations are
    written when :attr:`trace` is read, not during the backward pass.

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
        self._records: list[_Record] = []
        self._events: list[TraceEvent] = []  # built from _records when read
        self._facts: dict[str, dict[str, Any]] = {}
        self._sent: dict[str, list[GradStats | None]] = {}  # dst id -> stats sent to it
        self._had_grad: set[str] = set()  # leaves whose .grad existed before this backward
        self._scratch = Scratch() if self._full else None
        self._started: float | None = None
        self._last = 0.0  # when gradsight's latest hook returned
        self._handle = HookHandle()
        ids = self._capture.node_ids
        self._leaves = {nid: n.variable for n, nid in ids.items() if _is_leaf(n)}  # type: ignore[attr-defined]
        self._dst = {nid: tuple(self._capture.destinations(nid).items()) for nid in ids.values()}
        self._single = {nid for nid in ids.values() if self._capture.in_degree.get(nid, 0) == 1}
        self._single.discard("n0")  # the root also receives the seed gradient
        for node, nid in ids.items():
            if nid == "n0" or (self._full and needs_facts(node)):
                self._handle.add(node.register_prehook(self._make_prehook(node, nid)))
            self._handle.add(node.register_hook(self._make_hook(node, nid)))

    def _make_prehook(self, node: Node, nid: str) -> Any:
        def prehook(grad_outputs: tuple[Tensor | None, ...]) -> None:
            if self._started is None:
                self._started = time.perf_counter()
                self._had_grad = {k for k, v in self._leaves.items() if v.grad is not None}
            if self._full:
                self._facts[nid] = facts_before(node, self._scratch)
            self._last = time.perf_counter()

        return prehook

    def _make_hook(self, node: Node, nid: str) -> Any:
        variable = self._leaves.get(nid)
        destinations = self._dst[nid]
        single = nid in self._single
        full = self._full
        scratch = self._scratch

        def hook(
            grad_inputs: tuple[Tensor | None, ...], grad_outputs: tuple[Tensor | None, ...]
        ) -> None:
            seconds = time.perf_counter() - self._last
            sent = self._sent.pop(nid, None)
            incoming = grad_outputs[0] if grad_outputs else None
            if single and sent is not None and len(sent) == 1 and len(grad_outputs) == 1:
                received = sent[0]  # the very tensor its one producer sent: measured already
            else:
                received = grad_stats(incoming, full, scratch)
            accumulated = nid in self._had_grad
            if variable is not None:  # AccumulateGrad: report the stored .grad
                fresh = not accumulated and received is not None  # .grad equals what came in
                produced: tuple[GradStats | None, ...] = (
                    received if fresh else grad_stats(variable.grad, full, scratch),
                )
            else:
                produced = tuple(
                    _stats_of(g, incoming, received, full, scratch) for g in grad_inputs
                )
                for k, dst in destinations:
                    if k < len(produced):
                        self._sent.setdefault(dst, []).append(produced[k])
            self._records.append(_Record(nid, received, produced, accumulated, seconds))
            self._last = time.perf_counter()

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

    def _event(self, record: _Record) -> TraceEvent:
        graph_node = self._capture.node(record.nid)
        param = graph_node.name if graph_node.kind == "param" else None
        if record.nid in self._leaves:
            name, leaf = "AccumulateGrad", True
        else:
            name, leaf = graph_node.name, False
            self._capture.record(record.nid, record.received, list(record.produced))
        facts = self._facts.get(record.nid, {})
        return TraceEvent(
            len(self._events), record.nid, name, graph_node.module, param, (record.received,),
            record.produced, record.seconds,
            explain(name, facts, record.received, list(record.produced), param,
                    record.accumulated if leaf else False),
        )  # fmt: skip

    @property
    def trace(self) -> BackwardTrace:
        """The events so far, and the graph with the gradients seen so far."""
        for record in self._records[len(self._events) :]:
            self._events.append(self._event(record))
        leaf_stats = {r.nid: r.produced[0] for r in self._records if r.nid in self._leaves}
        self._capture._fill_params(leaf_stats)
        seconds = self._last - self._started if self._started is not None else 0.0
        return BackwardTrace(list(self._events), self._capture.graph, seconds)


def _is_leaf(node: Node) -> bool:
    return isinstance(getattr(node, "variable", None), Tensor)


def _stats_of(
    grad: Tensor | None,
    incoming: Tensor | None,
    received: GradStats | None,
    full: bool,
    scratch: Scratch | None,
) -> GradStats | None:
    """Stats of a produced gradient; a view of the incoming one (a reshape) reuses them."""
    if (
        grad is not None
        and incoming is not None
        and received is not None
        and grad.data_ptr() == incoming.data_ptr()
        and grad.numel() == incoming.numel()
        and grad.dtype == incoming.dtype
        and grad.is_contiguous()
        and incoming.is_contiguous()
    ):  # the same elements in the same order: only the shape differs
        return GradStats(tuple(grad.shape), received.norm, received.nonfinite,
                         received.max_abs, received.zeros)  # fmt: skip
    return grad_stats(grad, full, scratch)


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
