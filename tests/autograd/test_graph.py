"""capture_graph / capture_backward on real models: structure, gradients, non-interference."""

from __future__ import annotations

import math
import re
from collections import Counter

import pytest
import torch
import torchvision
from torch import nn

from gradsight.autograd.attribution import ModuleAttribution
from gradsight.autograd.capture import GraphCapture, capture_backward, capture_graph
from gradsight.autograd.graph import AutogradGraph
from gradsight.autograd.graph_modules import module_view
from gradsight.models import DeepCNN, SimpleCNN

ARTICLE_CHAIN = [
    "NllLossBackward0",
    "LogSoftmaxBackward0",
    "AddmmBackward0",
    "ViewBackward0",
    "MaxPool2DWithIndicesBackward0",
    "ReluBackward0",
    "ConvolutionBackward0",
]


def _article_step(seed: int = 0) -> tuple[SimpleCNN, torch.Tensor, ModuleAttribution]:
    torch.manual_seed(seed)
    model = SimpleCNN(3, 10, 32)
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    with ModuleAttribution(model) as tracker:
        logits = model(x)
    return model, nn.functional.cross_entropy(logits, y), tracker


def _path_from_loss(graph: AutogradGraph) -> list[str]:
    """Follow the first op-child at each step: the main chain from the loss."""
    children: dict[str, list[str]] = {}
    for e in graph.edges:
        children.setdefault(e.src, []).append(e.dst)
    names, node = [], "loss"
    while True:
        ops = [c for c in children.get(node, []) if graph.node(c).kind in ("op", "module")]
        if not ops:
            return names
        node = ops[0]
        names.append(graph.node(node).name)


def test_article_cnn_op_chain_shapes_and_modules() -> None:
    model, loss, tracker = _article_step()
    graph = capture_backward(loss, model, tracker)
    assert _path_from_loss(graph) == ARTICLE_CHAIN
    by_name = {n.name: n for n in graph.nodes}
    assert by_name["AddmmBackward0"].shape == (4, 10) and by_name["AddmmBackward0"].module == "fc"
    assert by_name["ViewBackward0"].shape == (4, 4096) and by_name["ViewBackward0"].module is None
    assert by_name["MaxPool2DWithIndicesBackward0"].shape == (4, 16, 16, 16)
    assert by_name["MaxPool2DWithIndicesBackward0"].module == "pool"
    assert by_name["ReluBackward0"].module == "relu"
    assert by_name["ConvolutionBackward0"].shape == (4, 16, 32, 32)
    assert by_name["ConvolutionBackward0"].module == "conv1"
    params = {n.name: n for n in graph.params()}
    assert {k: v.shape for k, v in params.items()} == {
        "conv1.weight": (16, 3, 3, 3),
        "conv1.bias": (16,),
        "fc.weight": (10, 4096),
        "fc.bias": (10,),
    }
    for name, p in model.named_parameters():
        assert p.grad is not None
        assert math.isclose(params[name].grad_norm or 0.0, float(p.grad.norm()), rel_tol=1e-6)
    conv = by_name["ConvolutionBackward0"]
    assert {s.name: s.shape for s in conv.saved if s.shape is not None}["input"] == (4, 3, 32, 32)


def test_edges_carry_the_gradient_that_flowed() -> None:
    model, loss, tracker = _article_step()
    logits_grad: list[torch.Tensor] = []
    loss.grad_fn.next_functions[0][0].register_hook(  # type: ignore[union-attr]
        lambda gi, go: logits_grad.append(gi[0].detach().clone())
    )
    graph = capture_backward(loss, model, tracker)
    first = graph.edges[0]
    assert (first.src, first.dst, first.shape, first.grad_norm) == ("loss", "n0", (), 1.0)
    to_addmm = next(e for e in graph.edges if graph.node(e.dst).name == "AddmmBackward0")
    assert to_addmm.shape == (4, 10)
    assert math.isclose(to_addmm.grad_norm or 0, float(logits_grad[0].norm()), rel_tol=1e-6)
    # d loss / d logits = (softmax - onehot) / N: each row sums to zero, norm <= sqrt(2)/N * sqrt(N)
    assert 0 < (to_addmm.grad_norm or 0) < math.sqrt(2 / 4)


def test_module_level_reads_conv1_relu_pool_fc() -> None:
    model, loss, tracker = _article_step()
    view = module_view(capture_backward(loss, model, tracker))
    assert view.level == "module"
    assert _path_from_loss(view) == ["fc", "pool", "relu", "conv1"]
    fc = view.node("module:fc")
    assert fc.shape == (4, 10) and fc.ops == ("AddmmBackward0", "TBackward0")
    assert view.node("module:pool").shape == (4, 16, 16, 16)
    assert sorted(n.name for n in view.params()) == sorted(n for n, _ in model.named_parameters())


def _torchviz_op_names(loss: torch.Tensor) -> Counter[str]:
    torchviz = pytest.importorskip("torchviz")
    dot = torchviz.make_dot(loss)
    names = [m.group(1) for line in dot.body if (m := re.match(r"\s*\d+ \[label=(\w+)\]", line))]
    return Counter(names)


@pytest.mark.parametrize("which", ["simple", "deep", "resnet18"])
def test_op_multiset_equals_torchviz(which: str) -> None:
    torch.manual_seed(0)
    if which == "resnet18":
        model: nn.Module = torchvision.models.resnet18(num_classes=10)
        x = torch.randn(2, 3, 64, 64)
    else:
        model = SimpleCNN(3, 10, 32) if which == "simple" else DeepCNN(3, 10, 32)
        x = torch.randn(2, 3, 32, 32)
    loss = nn.functional.cross_entropy(model(x), torch.tensor([1, 2]))
    ours = Counter(capture_graph(loss, model).op_names())
    assert ours == _torchviz_op_names(loss)
    assert ours["AccumulateGrad"] == sum(1 for _ in model.parameters())


class Detaching(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(4, 4)
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).detach())  # body gets no gradient


def test_detached_and_frozen_parameters_are_named_with_reason() -> None:
    model = Detaching()
    model.head.bias.requires_grad_(False)
    loss = model(torch.randn(3, 4)).sum()
    graph = capture_backward(loss, model)
    reasons = {p.name: p.reason for p in graph.no_grad_params}
    assert reasons == {"body.weight": "detached", "body.bias": "detached", "head.bias": "frozen"}
    assert "not reachable from the loss" in graph.no_grad_params[0].explanation
    assert [n.name for n in graph.params()] == ["head.weight"]


def _reachable(loss: torch.Tensor) -> set[int]:
    seen, stack = {id(loss.grad_fn)}, [loss.grad_fn]
    while stack:
        node = stack.pop()
        for nxt, _ in node.next_functions:  # type: ignore[union-attr]
            if nxt is not None and id(nxt) not in seen:
                seen.add(id(nxt))
                stack.append(nxt)
    return seen


def test_capture_adds_no_node_and_leaves_grads_bit_identical() -> None:
    model, loss, tracker = _article_step(seed=3)
    before = _reachable(loss)
    capture = GraphCapture(loss, model, tracker)
    with capture.gradients():
        assert _reachable(loss) == before
        loss.backward(retain_graph=True)
    assert _reachable(loss) == before
    traced = {n: p.grad.clone() for n, p in model.named_parameters()}  # type: ignore[union-attr]
    model.zero_grad(set_to_none=True)
    loss.backward()  # hooks are gone: a plain backward
    for name, p in model.named_parameters():
        assert torch.equal(traced[name], p.grad), name  # type: ignore[arg-type]
    norms = [e.grad_norm for e in capture.graph.edges]
    assert all(n is not None for n in norms)


def test_hooks_removed_after_the_block() -> None:
    model, loss, tracker = _article_step()
    capture = GraphCapture(loss, model, tracker)
    with capture.gradients():
        pass  # no backward inside: nothing recorded
    loss.backward()
    assert all(e.grad_norm is None for e in capture.graph.edges[1:])
    assert all(len(m._forward_hooks) == 0 for m in model.modules())


def test_ten_thousand_op_chain_needs_no_recursion() -> None:
    x = torch.ones(3, requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    graph = capture_backward(y.sum())
    assert sum(1 for n in graph.nodes if n.name == "MulBackward0") == 10_000
    assert graph.nodes[-1].kind == "input"
    assert math.isclose(graph.nodes[-1].grad_norm or 0, float(x.grad.norm()), rel_tol=1e-6)  # type: ignore[union-attr]


def test_loss_without_grad_fn_is_refused() -> None:
    with pytest.raises(ValueError, match="no grad_fn"):
        capture_graph(torch.zeros(()))


def test_nan_gradient_counted_not_hidden() -> None:
    w = torch.tensor([1.0, 0.0], requires_grad=True)
    loss = torch.sqrt(w).sum()  # d sqrt / dw at 0 is inf
    graph = capture_backward(loss)
    leaf = graph.nodes[-1]
    assert leaf.nonfinite == 1 and math.isnan(leaf.grad_norm or 0.0)


def test_capture_reads_no_saved_tensor_behind_a_hook() -> None:
    unpacks = 0

    def unpack(t: torch.Tensor) -> torch.Tensor:
        nonlocal unpacks
        unpacks += 1
        return t

    a = torch.randn(4, 3, requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(lambda t: t, unpack):
        loss = a[torch.tensor([0, 2])].relu().sum()  # IndexBackward saves a tuple of indices
    graph = capture_graph(loss)
    assert unpacks == 0
    saved = {s.name: s for node in graph.nodes for s in node.saved}
    assert (
        saved["indices"].value == saved["result"].value == ("not read: behind a saved-tensor hook")
    )
    loss.backward()
    assert unpacks == 2  # the backward's own reads: ReLU's result, the indices


class _ZeroLen(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def __len__(self) -> int:
        return 0  # falsy: `if model:` would drop every parameter name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


def test_a_model_whose_len_is_zero_keeps_its_parameter_names() -> None:
    model = _ZeroLen()
    graph = capture_backward(model(torch.randn(2, 3)).sum(), model)
    assert sorted(n.name for n in graph.params()) == ["fc.bias", "fc.weight"]


def test_a_compiled_model_is_captured_with_its_own_names() -> None:
    try:
        model = torch.compile(_ZeroLen(), backend="aot_eager")
        loss = model(torch.randn(2, 3)).sum()
    except Exception:  # torch.compile cannot run on this Python/platform
        pytest.skip("torch.compile cannot run here")
    graph = capture_backward(loss, model)  # type: ignore[arg-type]
    assert "CompiledFunctionBackward" in graph.op_names()
    assert sorted(n.name for n in graph.params()) == ["fc.bias", "fc.weight"]


def test_the_graph_prints_as_a_one_line_summary() -> None:
    w = torch.ones(2, requires_grad=True)
    assert repr(capture_graph((w * 2).sum())) == "AutogradGraph(4 nodes, 3 edges, op)"
