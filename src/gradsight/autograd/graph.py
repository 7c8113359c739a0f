"""The autograd graph as plain data: nodes, edges with the gradient that flowed along them,
and the parameters that got none. :mod:`gradsight.autograd.capture` fills it in;
:mod:`gradsight.reports` renders it (and shows it in Jupyter)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["LOSS_ID", "AutogradGraph", "GraphEdge", "GraphNode", "NoGradParam", "SavedTensor"]

LOSS_ID = "loss"


@dataclass(frozen=True)
class SavedTensor:
    """One ``_saved_*`` attribute of a backward node: a tensor's metadata, or a small value."""

    name: str  # without the _saved_ prefix, e.g. "self", "mat1", "result"
    shape: tuple[int, ...] | None = None
    dtype: str | None = None
    value: str | None = None  # repr of a non-tensor value (ints, tuples), cut to 60 chars


@dataclass
class GraphNode:
    """A backward op, a parameter (or other leaf), or the loss itself."""

    id: str
    kind: str  # "op" | "param" | "input" | "loss"; "module" in a module-level view
    name: str  # "ConvolutionBackward0", or the parameter's name "conv1.weight"
    module: str | None  # qualified name of the module that created it; None if unknown/root
    shape: tuple[int, ...] | None  # forward output shape (the parameter's shape for leaves)
    grad_norm: float | None = None  # params: ||p.grad||; ops: norm of the gradient received
    nonfinite: int = 0
    saved: tuple[SavedTensor, ...] = ()
    ops: tuple[str, ...] = ()  # module-level nodes: the ops collapsed into this module
    call: int = 0  # which call of ``module`` created it, when a module runs more than once


@dataclass
class GraphEdge:
    """Gradient flow from ``src`` (nearer the loss) to ``dst`` (the input it is for)."""

    src: str
    dst: str
    shape: tuple[int, ...] | None
    grad_norm: float | None = None
    nonfinite: int = 0


@dataclass(frozen=True)
class NoGradParam:
    """A parameter that got no gradient, and why."""

    name: str
    reason: str  # "detached" | "frozen"

    @property
    def explanation(self) -> str:
        if self.reason == "frozen":
            return f"{self.name}: frozen (requires_grad=False), so no gradient is computed for it"
        return (
            f"{self.name}: detached: requires a gradient but is not reachable from the loss "
            "(a .detach(), torch.no_grad() or a branch not used by the loss cuts it off)"
        )


@dataclass
class AutogradGraph:
    """The backward graph of one loss as plain data; render it with ``gradsight.reports``."""

    nodes: list[GraphNode]
    edges: list[GraphEdge]
    no_grad_params: list[NoGradParam] = field(default_factory=list)
    level: str = "op"  # "op" or "module"

    def __repr__(self) -> str:
        return f"AutogradGraph({len(self.nodes)} nodes, {len(self.edges)} edges, {self.level})"

    def node(self, node_id: str) -> GraphNode:
        """Return the node with ``node_id``."""
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)

    def params(self) -> list[GraphNode]:
        return [n for n in self.nodes if n.kind == "param"]

    def op_names(self) -> list[str]:
        """Names of every autograd node (ops and AccumulateGrad), as torchviz lists them."""
        return [
            n.name if n.kind == "op" else "AccumulateGrad"
            for n in self.nodes
            if n.kind in ("op", "param", "input")
        ]
