"""trace_backward / BackwardTracer: real execution order, values, and no interference."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision
from torch import nn

from gradsight.autograd.attribution import ModuleAttribution
from gradsight.autograd.trace import BackwardTracer, trace_backward
from gradsight.autograd.trace_explain import facts_before
from gradsight.models import SimpleCNN

from .reads import ScalarReads

EXPECTED = [
    ("NllLossBackward0", None),
    ("LogSoftmaxBackward0", None),
    ("AddmmBackward0", None),
    ("AccumulateGrad", "fc.bias"),
    ("TBackward0", None),
    ("AccumulateGrad", "fc.weight"),
    ("ViewBackward0", None),
    ("MaxPool2DWithIndicesBackward0", None),
    ("ReluBackward0", None),
    ("ConvolutionBackward0", None),
    ("AccumulateGrad", "conv1.weight"),
    ("AccumulateGrad", "conv1.bias"),
]


def _article(seed: int = 0) -> tuple[SimpleCNN, torch.Tensor, torch.Tensor, ModuleAttribution]:
    torch.manual_seed(seed)
    model = SimpleCNN(3, 10, 32)
    x = torch.randn(4, 3, 32, 32)
    with ModuleAttribution(model) as modules:
        logits = model(x)
    loss = nn.functional.cross_entropy(logits, torch.tensor([0, 3, 5, 9]))
    return model, x, loss, modules


def _raw_order(loss: torch.Tensor) -> list[str]:
    """The execution order seen by plain post-hooks: an independent witness."""
    order: list[str] = []
    nodes, stack = set(), [loss.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in nodes:
            continue
        nodes.add(node)
        stack.extend(n for n, _ in node.next_functions)
    handles = [n.register_hook(lambda gi, go, n=n: order.append(type(n).__name__)) for n in nodes]
    loss.backward(retain_graph=True)
    for h in handles:
        h.remove()
    return order


def test_simple_cnn_order_is_the_engines() -> None:
    model, _, loss, modules = _article()
    witness = _raw_order(loss)
    model.zero_grad(set_to_none=True)
    trace = trace_backward(loss, model, modules)
    assert [(e.name, e.param) for e in trace.events] == EXPECTED
    assert [e.name for e in trace.events] == witness
    assert [e.index for e in trace.events] == list(range(12))
    assert trace.events[2].module == "fc" and trace.events[8].module == "relu"


def test_accumulate_grad_norms_equal_param_grads() -> None:
    model, _, loss, modules = _article()
    trace = trace_backward(loss, model, modules)
    grads = {n: p.grad for n, p in model.named_parameters()}
    for e in trace.events:
        if e.name == "AccumulateGrad":
            stored = e.produced[0]
            assert stored is not None and e.param is not None
            assert math.isclose(stored.norm, float(grads[e.param].norm()), rel_tol=1e-6)  # type: ignore[union-attr]
            assert e.explanation == f"AccumulateGrad: stored into {e.param}.grad"


def test_relu_and_maxpool_explanations_come_from_the_tensors() -> None:
    model, x, loss, modules = _article()
    trace = trace_backward(loss, model, modules)
    with torch.no_grad():
        nonpositive = float((model.conv1(x) <= 0).double().mean())
    relu = next(e for e in trace.events if e.name == "ReluBackward0")
    assert f"zeroed {nonpositive:.0%} of it" in relu.explanation
    pool = next(e for e in trace.events if e.name.startswith("MaxPool"))
    assert "routed each of 16384 gradients" in pool.explanation  # 4*16*16*16 outputs
    assert "75% of input positions get zero" in pool.explanation  # 2x2 windows, no ties
    received = pool.received[0]
    assert received is not None and received.shape == (4, 16, 16, 16)
    addmm = next(e for e in trace.events if e.name == "AddmmBackward0")
    assert "grad_out (4x10) @ W (10x4096) -> grad of input (4x4096)" in addmm.explanation
    assert "input^T (4096x4) @ grad_out -> grad of W^T (4096x10)" in addmm.explanation


@pytest.mark.parametrize(
    ("kernel", "stride", "padding", "dilation", "ceil_mode"),
    [
        (2, None, 0, 1, False),  # the article's pool: disjoint windows, counted from shapes
        (3, 3, 1, 1, True),  # disjoint, with padding and a partial last window
        (2, 3, 0, 2, False),  # dilated but disjoint
        (3, 2, 1, 1, False),  # overlapping: windows may share an arg-max, so it scatters
        (2, 2, 0, 2, False),  # dilated and overlapping
    ],
)
def test_maxpool_hit_fraction_counts_the_distinct_arg_max_positions(
    kernel: int, stride: int | None, padding: int, dilation: int, ceil_mode: bool
) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 11, 11).round(decimals=1).requires_grad_()  # ties too
    out = nn.functional.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode, True)[0]
    _, indices = nn.functional.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode, True)
    distinct = sum(len(plane.unique()) for plane in indices.flatten(0, 1))
    facts = facts_before(out.grad_fn)  # type: ignore[arg-type]
    assert facts["hit_fraction"] == pytest.approx(distinct / x.numel(), abs=1e-12)


def test_a_sparse_embedding_gradient_is_traced() -> None:
    emb = nn.Embedding(10, 4, sparse=True)
    trace = trace_backward(emb(torch.tensor([1, 2, 2])).sum(), emb)
    assert [e.name for e in trace.events] == [
        "SumBackward0", "EmbeddingBackward0", "AccumulateGrad",
    ]  # fmt: skip
    stored = trace.events[-1].produced[0]
    assert emb.weight.grad is not None and emb.weight.grad.is_sparse
    dense = emb.weight.grad.to_dense()
    assert stored is not None and stored.zeros == 32  # 8 stored values of 40
    assert math.isclose(stored.norm, float(dense.norm()), rel_tol=1e-6)


def _counted_unpacks(trace: bool, detail: str = "full") -> tuple[int, list[torch.Tensor]]:
    """Unpack-hook calls of one backward (traced or not) of a model whose saved tensors
    go through saved-tensor hooks, and the gradients it left."""
    unpacks = 0

    def unpack(t: torch.Tensor) -> torch.Tensor:
        nonlocal unpacks
        unpacks += 1
        return t

    torch.manual_seed(0)
    model, _, _, _ = _article()
    x = torch.randn(4, 3, 32, 32)
    with torch.autograd.graph.saved_tensors_hooks(lambda t: t, unpack):
        loss = nn.functional.cross_entropy(model(x), torch.tensor([0, 3, 5, 9]))
    if trace:
        trace_backward(loss, model, detail=detail, saved=True)
    else:
        loss.backward()
    return unpacks, [p.grad for p in model.parameters()]  # type: ignore[misc]


@pytest.mark.parametrize("detail", ["full", "norm"])
def test_saved_tensors_behind_hooks_are_not_read(detail: str) -> None:
    plain, plain_grads = _counted_unpacks(trace=False)
    traced, traced_grads = _counted_unpacks(trace=True, detail=detail)
    assert traced == plain > 0  # the trace unpacked nothing of its own
    assert all(torch.equal(a, b) for a, b in zip(plain_grads, traced_grads, strict=True))


def test_a_checkpointed_model_traces_in_full_detail() -> None:
    torch.manual_seed(0)
    body = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
    x = torch.randn(3, 1, 8, 8)
    loss = torch.utils.checkpoint.checkpoint(body, x, use_reentrant=False).sum()
    trace = trace_backward(loss, body)  # unpacks a saved tensor twice without the guard
    relu = next(e for e in trace.events if e.name == "ReluBackward0")
    assert relu.explanation == "ReLU backward: passed the gradient where the input was > 0"
    pool = next(e for e in trace.events if e.name.startswith("MaxPool"))
    assert pool.explanation.endswith("its 2x2 window, 75% of input positions get zero")
    expected = torch.autograd.grad(body(x).sum(), list(body.parameters()))
    assert all(torch.equal(p.grad, g) for p, g in zip(body.parameters(), expected, strict=True))  # type: ignore[arg-type]


def test_relu_zero_fraction_is_exact_with_ties_at_zero() -> None:
    x = torch.tensor([-1.0, 0.0, 0.0, 2.0, 3.0], requires_grad=True)
    trace = trace_backward(torch.relu(x).sum())
    relu = next(e for e in trace.events if e.name == "ReluBackward0")
    assert "zeroed 60% of it" in relu.explanation  # x <= 0 at 3 of 5: gradient 0 at x == 0
    produced = relu.produced[0]
    assert produced is not None and produced.zeros == 3


@pytest.mark.parametrize("which", ["simple", "resnet18"])
def test_traced_grads_bit_identical_to_untraced(which: str) -> None:
    def build() -> tuple[nn.Module, torch.Tensor]:
        torch.manual_seed(1)
        if which == "simple":
            return SimpleCNN(3, 10, 32), torch.randn(8, 3, 32, 32)
        return torchvision.models.resnet18(num_classes=10), torch.randn(2, 3, 64, 64)

    grads = []
    for traced in (False, True):
        model, x = build()
        loss = nn.functional.cross_entropy(model(x), torch.arange(x.shape[0]) % 10)
        if traced:
            trace_backward(loss, model)
        else:
            loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})  # type: ignore[union-attr]
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        assert torch.equal(grads[0][name], grads[1][name]), name


def test_hooks_removed_even_when_the_block_raises() -> None:
    _, _, loss, _ = _article()
    with pytest.raises(RuntimeError, match="boom"), BackwardTracer(loss) as tracer:
        raise RuntimeError("boom")
    loss.backward()  # no hook left: nothing recorded
    assert tracer.trace.events == []


def test_context_manager_wraps_the_users_backward() -> None:
    model, _, loss, modules = _article()
    with BackwardTracer(loss, model, modules) as tracer:
        loss.backward()
    trace = tracer.trace
    assert len(trace.events) == 12 and trace.seconds > 0
    steps = trace.steps()
    assert steps["n0"] == 0 and len(steps) == 12
    edge = next(e for e in trace.graph.edges if e.src == "n2" and e.shape == (4, 4096))
    assert edge.grad_norm is not None and edge.grad_norm > 0  # the graph got the gradients


def test_nonfinite_gradient_is_counted() -> None:
    w = torch.tensor([0.0, 4.0], requires_grad=True)
    trace = trace_backward(torch.sqrt(w).sum())
    sqrt = next(e for e in trace.events if e.name == "SqrtBackward0")
    produced = sqrt.produced[0]
    assert produced is not None and produced.nonfinite == 1 and math.isnan(produced.norm)
    assert produced.max_abs == pytest.approx(0.25)  # the finite entry: 1 / (2 * sqrt(4))


def test_norm_only_detail_skips_the_costly_statistics() -> None:
    model, _, loss, modules = _article()
    trace = trace_backward(loss, model, modules, detail="norm")
    relu = next(e for e in trace.events if e.name == "ReluBackward0")
    produced = relu.produced[0]
    assert produced is not None and produced.norm > 0
    assert produced.zeros is None and produced.max_abs is None
    assert relu.explanation == "ReLU backward: passed the gradient where the input was > 0"
    pool = next(e for e in trace.events if e.name.startswith("MaxPool"))  # read from shapes
    assert "2x2 window, 75% of input positions get zero" in pool.explanation
    weight = next(e for e in trace.events if e.param == "fc.weight")
    assert weight.produced[0] is not None
    assert math.isclose(weight.produced[0].norm, float(model.fc.weight.grad.norm()), rel_tol=1e-6)  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="detail must be 'full' or 'norm'"):
        trace_backward(loss, model, detail="some")


def test_a_reshape_reuses_the_stats_of_the_gradient_it_passes_on() -> None:
    _, _, loss, modules = _article()
    trace = trace_backward(loss, modules=modules)
    view = next(e for e in trace.events if e.name == "ViewBackward0")
    received, produced = view.received[0], view.produced[0]
    assert received is not None and produced is not None
    assert received.shape == (4, 4096) and produced.shape == (4, 16, 16, 16)
    assert (produced.norm, produced.zeros, produced.max_abs) == (
        received.norm, received.zeros, received.max_abs,
    )  # fmt: skip


def test_relu_explanation_follows_threshold_backward_for_nan_inputs() -> None:
    x = torch.tensor([math.nan, -1.0, 2.0], requires_grad=True)
    trace = trace_backward(torch.relu(x).sum())  # must not fail on the NaN activation
    relu = next(e for e in trace.events if e.name == "ReluBackward0")
    assert "zeroed 33% of it" in relu.explanation  # only -1: a NaN result passes its gradient
    produced = relu.produced[0]
    assert produced is not None and produced.zeros == 1 and x.grad is not None
    assert x.grad.tolist() == [1.0, 0.0, 1.0]


def test_second_backward_is_explained_as_accumulating() -> None:
    model, _, loss, modules = _article()
    loss.backward(retain_graph=True)
    trace = trace_backward(loss, model, modules)
    weight = next(e for e in trace.events if e.param == "fc.weight")
    assert weight.explanation == "AccumulateGrad: added to fc.weight.grad"
    stored = weight.produced[0]
    assert stored is not None and model.fc.weight.grad is not None
    assert math.isclose(stored.norm, float(model.fc.weight.grad.norm()), rel_tol=1e-6)


def test_node_times_are_disjoint_parts_of_the_traced_backward() -> None:
    _, _, loss, modules = _article()
    trace = trace_backward(loss, modules=modules)
    assert all(e.seconds >= 0 for e in trace.events)
    assert sum(e.seconds for e in trace.events) <= trace.seconds


@pytest.mark.parametrize("detail", ["full", "norm"])
def test_deferred_statistics_equal_the_immediate_ones_without_a_read_per_node(
    detail: str,
) -> None:
    with ScalarReads() as counter:
        float(torch.ones(2).sum())
    assert counter.reads == 1  # the counter sees a read (the CPU path reads through NumPy)
    traces, reads, grads = [], [], []
    for defer in (False, True):
        model, _, loss, modules = _article()
        with (
            BackwardTracer(loss, model, modules, detail, defer=defer) as tracer,
            ScalarReads() as mode,
        ):
            loss.backward()
        reads.append(mode.reads)
        traces.append(tracer.trace)
        grads.append([p.grad for p in model.parameters()])
    assert reads[1] == 0  # deferred: nothing read during backward()
    immediate, deferred = traces
    assert [e.name for e in deferred.events] == [e.name for e in immediate.events]
    for a, b in zip(immediate.events, deferred.events, strict=True):
        assert a.explanation == b.explanation
        for x, y in zip(a.received + a.produced, b.received + b.produced, strict=True):
            assert (x is None) == (y is None)
            if x is not None and y is not None:  # the norm's last bit may differ: sqrt order
                assert (x.shape, x.nonfinite, x.max_abs, x.zeros) == (
                    y.shape, y.nonfinite, y.max_abs, y.zeros,
                )  # fmt: skip
                assert math.isclose(x.norm, y.norm, rel_tol=1e-6)
    assert all(torch.equal(a, b) for a, b in zip(*grads, strict=True))  # type: ignore[arg-type]


def test_deferred_statistics_count_nan_and_inf() -> None:
    w = torch.tensor([0.0, 4.0], requires_grad=True)
    trace = trace_backward(torch.sqrt(w).sum(), defer=True)
    sqrt = next(e for e in trace.events if e.name == "SqrtBackward0")
    produced = sqrt.produced[0]
    assert produced is not None and produced.nonfinite == 1 and math.isnan(produced.norm)
    assert produced.max_abs == pytest.approx(0.25) and produced.zeros == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_trace_defers_its_reads_and_matches_the_cpu() -> None:
    traces, reads = [], []
    for device in ("cpu", "cuda"):
        torch.manual_seed(0)
        model = SimpleCNN(3, 10, 32).to(device).double()
        x = torch.randn(4, 3, 32, 32, dtype=torch.float64, device=device)
        loss = nn.functional.cross_entropy(model(x), torch.tensor([0, 3, 5, 9], device=device))
        with BackwardTracer(loss, model) as tracer, ScalarReads() as mode:
            loss.backward()
        reads.append(mode.reads)
        traces.append(tracer.trace)
    assert reads[0] > 0 and reads[1] == 0  # the CPU reads as it goes; CUDA only at the end
    cpu, cuda = traces
    assert [e.name for e in cuda.events] == [e.name for e in cpu.events]
    for a, b in zip(cpu.events, cuda.events, strict=True):
        assert a.explanation == b.explanation
        for x, y in zip(a.produced, b.produced, strict=True):
            if x is not None and y is not None:
                assert (x.shape, x.zeros, x.nonfinite) == (y.shape, y.zeros, y.nonfinite)
                assert math.isclose(x.norm, y.norm, rel_tol=1e-9)


def test_other_backwards_through_the_same_parameters_are_not_recorded() -> None:
    model, x, loss, modules = _article()
    other = model(x).sum()  # another graph that ends in the same AccumulateGrad nodes
    with BackwardTracer(loss, model, modules) as tracer:
        other.backward()  # before the traced one: its leaf hooks must stay silent
        loss.backward()
        assert model.fc.weight.grad is not None
        stored = float(model.fc.weight.grad.norm())  # other's gradient plus loss's
        model(x).sum().backward()  # and after it, with the hooks still on
    trace = tracer.trace
    assert [(e.name, e.param) for e in trace.events] == EXPECTED
    weight = next(e for e in trace.events if e.param == "fc.weight")
    assert weight.explanation == "AccumulateGrad: added to fc.weight.grad"
    assert weight.produced[0] is not None
    assert math.isclose(weight.produced[0].norm, stored, rel_tol=1e-6)


def test_graph_is_built_when_read_and_keeps_saved_tensors_on_request() -> None:
    for saved in (False, True):
        model, _, loss, modules = _article()
        trace = trace_backward(loss, model, modules, saved=saved)
        conv = next(n for n in trace.graph.nodes if n.name == "ConvolutionBackward0")
        assert bool(conv.saved) is saved  # read before backward freed them, or not at all
        relu = next(n for n in trace.graph.nodes if n.name == "ReluBackward0")
        assert relu.grad_norm == trace.events[8].received[0].norm  # type: ignore[union-attr]
        assert trace.graph is trace.graph  # built once


def _event(trace: object, name: str) -> object:
    return next(e for e in trace.events if e.name == name)  # type: ignore[attr-defined]


def test_received_is_measured_after_a_tensor_hook_changed_the_gradient() -> None:
    w = torch.ones(3, requires_grad=True)
    h = w * 2  # MulBackward0 receives the gradient of h
    h.register_hook(lambda g: g * 1e4)  # changes it between SumBackward0 and MulBackward0
    loss = (h.exp()).sum()
    trace = trace_backward(loss, detail="norm")
    sent = _event(trace, "ExpBackward0").produced[0].norm  # type: ignore[attr-defined]
    received = _event(trace, "MulBackward0").received[0].norm  # type: ignore[attr-defined]
    assert received == pytest.approx(1e4 * sent, rel=1e-6)
    assert received == pytest.approx(float(1e4 * (2 * torch.ones(3)).exp().norm()), rel=1e-6)


def test_received_is_measured_after_an_in_place_tensor_hook() -> None:
    w = torch.ones(3, requires_grad=True)
    h = w * 2
    h.register_hook(lambda g: g.mul_(10))  # the same tensor, changed in place
    trace = trace_backward((h * 3).sum(), detail="norm")
    h_node = [e for e in trace.events if e.name == "MulBackward0"][-1]  # h's, after h * 3's
    assert h_node.received[0].norm == pytest.approx(30 * math.sqrt(3))


def test_fan_in_received_is_the_sum_of_what_was_sent() -> None:
    a = torch.ones(3, requires_grad=True)
    b = a * 2  # b feeds two branches: its MulBackward0 receives 3 + 4 = 7 per element
    loss = (b * 3 + b * 4).sum()
    trace = trace_backward(loss, detail="norm")
    first = [e for e in trace.events if e.name == "MulBackward0"][-1]  # b's node runs last
    assert first.received[0].norm == pytest.approx(7 * math.sqrt(3))
    assert a.grad is not None and torch.equal(a.grad, torch.full((3,), 14.0))


def _compile_works() -> bool:
    try:
        return bool(torch.compile(lambda t: t * 2, backend="aot_eager")(torch.ones(1)).item() == 2)
    except Exception:  # torch.compile cannot run on this Python/platform
        return False


class _NoLen(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x).relu()


class _ZeroLen(_NoLen):
    def __len__(self) -> int:
        return 0  # falsy: `if model:` would drop every parameter name


@pytest.mark.skipif(not _compile_works(), reason="torch.compile cannot run here")
def test_compiled_model_traces_with_its_own_parameter_names() -> None:
    model = torch.compile(_NoLen(), backend="aot_eager")
    loss = model(torch.randn(4, 3)).sum()
    trace = trace_backward(loss, model)  # type: ignore[arg-type]
    assert "CompiledFunctionBackward" in [e.name for e in trace.events]
    assert sorted(e.param for e in trace.events if e.param) == ["fc.bias", "fc.weight"]


def test_a_model_without_len_or_with_len_zero_keeps_its_parameter_names() -> None:
    for model in (_NoLen(), _ZeroLen()):
        loss = model(torch.randn(4, 3)).sum()
        trace = trace_backward(loss, model)
        assert sorted(e.param for e in trace.events if e.param) == ["fc.bias", "fc.weight"]
