"""The trace's explanations state what the node computed: scales, shapes, reductions."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint

from gradsight.autograd.trace import BackwardTrace, BackwardTracer, TraceEvent, trace_backward
from gradsight.autograd.trace_explain import facts_before, needs_facts
from gradsight.autograd.trace_words import explain

from .reads import ScalarReads

TARGETS = torch.tensor([0, 3, 1, 4, 2, 0])  # 6 samples, 5 classes


class _Mlp(nn.Module):
    """(6, 12) -> Linear 12->7 -> ReLU -> Linear 7->5: two Addmm nodes and a ReLU."""

    def __init__(self, bias: bool = True) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(12, 7, bias=bias), nn.Linear(7, 5, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc1(x).relu())  # (6, 5) logits


class _Convs(nn.Module):
    """(3, 2, 9, 9) -> conv 3x3, stride 2, pad 1 -> (3, 4, 5, 5)
    -> conv 1x3, dilation 2, pad (0, 2) -> (3, 6, 5, 5)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(4, 6, (1, 3), padding=(0, 2), dilation=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))


def _event(trace: BackwardTrace, name: str, index: int = 0) -> TraceEvent:
    return [e for e in trace.events if e.name == name][index]


def _nll_run(
    detail: str, scale: float = 1.0, **kwargs: object
) -> tuple[str, torch.Tensor, nn.Module]:
    """Trace ``scale * nll_loss(log_softmax(mlp(x)))``; return the NLL's explanation and the
    gradient of the log-probabilities, the tensor that explanation describes."""
    torch.manual_seed(0)
    model = _Mlp()
    logp = model(torch.randn(6, 12)).log_softmax(1)
    logp.retain_grad()
    loss = F.nll_loss(logp, TARGETS, **kwargs)  # type: ignore[arg-type]
    loss = loss.sum() if kwargs.get("reduction") == "none" else loss
    trace = trace_backward(loss * scale if scale != 1 else loss, model, detail=detail)
    assert logp.grad is not None
    return _event(trace, "NllLossBackward0").explanation, logp.grad, model


WHERE = "at each sample's target log-probability, 0 elsewhere"


@pytest.mark.parametrize("detail", ["full", "norm"])
@pytest.mark.parametrize(
    ("reduction", "scale", "stated", "entry"),
    [
        ("mean", 1.0, f"(mean): -1/N = -1/6 {WHERE}", -1 / 6),
        ("sum", 1.0, f"(sum): -1 {WHERE}", -1.0),
        ("mean", 3.0, f"(mean): -g/N = -3/6 {WHERE}; g = 3 is the gradient it received", -0.5),
        ("sum", 3.0, f"(sum): -g = -3 {WHERE}; g = 3 is the gradient it received", -3.0),
        ("mean", -0.5, f"(mean): -g/N = 0.5/6 {WHERE}; g = -0.5 is the gradient it received",
         0.5 / 6),
    ],
)  # fmt: skip
def test_nll_states_the_scale_its_gradient_has(
    detail: str, reduction: str, scale: float, stated: str, entry: float
) -> None:
    explanation, grad, _ = _nll_run(detail, scale, reduction=reduction)
    assert explanation == f"NLL loss backward {stated}"
    at_target = grad[torch.arange(6), TARGETS]
    assert torch.allclose(at_target, torch.full((6,), entry))  # the value the line states
    assert int((grad != 0).sum()) == 6  # 0 elsewhere


def test_nll_mean_counts_only_the_targets_not_ignored() -> None:
    explanation, grad, _ = _nll_run("full", ignore_index=0)  # samples 0 and 5 have target 0
    assert explanation == (
        f"NLL loss backward (mean): -1/N = -1/4 {WHERE}; the samples whose target is "
        "ignore_index 0 (2 of 6) get 0 and are not counted in N"
    )
    assert torch.allclose(grad[torch.arange(6), TARGETS], torch.tensor([0, -1, -1, -1, -1, 0]) / 4)


def test_nll_with_class_weights_states_their_total() -> None:
    weight = torch.tensor([1.0, 2.0, 0.5, 4.0, 3.0])
    explanation, grad, _ = _nll_run("norm", weight=weight)
    total = float(weight[TARGETS].sum())  # 1 + 4 + 2 + 3 + 0.5 + 1 = 11.5
    assert explanation == (
        "NLL loss backward (mean): -w[target]/W = -w[target]/11.5 "
        f"{WHERE}; W = the sum of the targets' class weights"
    )
    assert torch.allclose(grad[torch.arange(6), TARGETS], -weight[TARGETS] / total)


def test_nll_without_reduction_passes_each_samples_own_gradient() -> None:
    explanation, grad, _ = _nll_run("full", reduction="none")
    assert explanation == (
        "NLL loss backward (none): minus each sample's received gradient (6) at its target "
        "log-probability, 0 elsewhere"
    )
    assert torch.equal(grad[torch.arange(6), TARGETS], -torch.ones(6))  # .sum() sent 1 each


def test_mse_states_its_scale() -> None:
    pred = torch.randn(4, 3, requires_grad=True)
    trace = trace_backward(F.mse_loss(pred, torch.zeros(4, 3)) * 3)
    assert _event(trace, "MseLossBackward0").explanation == (
        "MSE loss backward (mean): 2g*(input - target)/N = 6*(input - target)/12 to the input "
        "(g = 3 is the gradient it received)"
    )
    assert pred.grad is not None and torch.allclose(pred.grad, 6 * pred.detach() / 12)


@pytest.mark.parametrize("detail", ["full", "norm"])
def test_linear_layers_state_the_matrix_shapes(detail: str) -> None:
    torch.manual_seed(0)
    model = _Mlp()
    loss = F.cross_entropy(model(torch.randn(6, 12)), TARGETS)
    trace = trace_backward(loss, model, detail=detail)
    fc2, fc1 = _event(trace, "AddmmBackward0", 0), _event(trace, "AddmmBackward0", 1)
    assert fc2.explanation == (
        "Addmm backward (Linear): grad_out (6x5) @ W (5x7) -> grad of input (6x7); "
        "input^T (7x6) @ grad_out -> grad of W^T (7x5); "
        "grad_out summed over its 6 rows -> grad of bias (5)"
    )
    assert fc1.explanation == (  # x needs no gradient
        "Addmm backward (Linear): input^T (12x6) @ grad_out -> grad of W^T (12x7); "
        "grad_out summed over its 6 rows -> grad of bias (7); no grad of input (it needs none)"
    )
    assert [p.shape if p else None for p in fc2.produced] == [(5,), (6, 7), (7, 5)]
    t = _event(trace, "TBackward0")
    assert t.explanation == "Transpose backward: transposed the gradient 7x5 -> 5x7"
    assert _event(trace, "LogSoftmaxBackward0").explanation.startswith(
        "LogSoftmax backward over dim 1 of a 6x5 gradient: grad - softmax * sum(grad)"
    )


def test_a_linear_without_bias_is_an_mm() -> None:
    torch.manual_seed(0)
    model = _Mlp(bias=False)
    trace = trace_backward(model(torch.randn(6, 12)).sum(), model)
    assert _event(trace, "MmBackward0").explanation == (
        "Mm backward (Linear, no bias): grad_out (6x5) @ W (5x7) -> grad of input (6x7); "
        "input^T (7x6) @ grad_out -> grad of W^T (7x5)"
    )
    plain = trace_backward((torch.ones(2, 3) @ torch.ones(3, 4, requires_grad=True)).sum())
    assert _event(plain, "MmBackward0").explanation == (
        "Mm backward: self^T (3x2) @ grad_out -> grad of mat2 (3x4); "
        "no grad of self (it needs none)"
    )


@pytest.mark.parametrize("detail", ["full", "norm"])
def test_convolutions_state_their_shapes_and_setup(detail: str) -> None:
    torch.manual_seed(0)
    model = _Convs()
    trace = trace_backward(model(torch.randn(3, 2, 9, 9)).sum(), model, detail=detail)
    conv2, conv1 = (_event(trace, "ConvolutionBackward0", k) for k in (0, 1))
    assert conv2.explanation == (
        "Convolution backward (1x3 kernel, stride 1, padding 0x2, dilation 2): transposed "
        "convolution of grad_out (3x6x5x5) with W (6x4x1x3) -> grad of input (3x4x5x5); "
        "correlation of the input (3x4x5x5) with grad_out -> grad of W (6x4x1x3); "
        "grad_out summed over batch and positions -> grad of bias (6)"
    )
    assert conv1.explanation == (  # the input's shape is read from the saved tensor's metadata
        "Convolution backward (3x3 kernel, stride 2, padding 1): correlation of the input "
        "(3x2x9x9) with grad_out -> grad of W (4x2x3x3); grad_out summed over batch and "
        "positions -> grad of bias (4); no grad of input (the input needs none)"
    )


def test_a_transposed_convolution_says_so() -> None:
    up = nn.ConvTranspose2d(4, 2, 2, stride=2)
    trace = trace_backward(up(torch.randn(1, 4, 3, 3, requires_grad=True)).sum(), up)
    assert _event(trace, "ConvolutionBackward0").explanation == (
        "Transposed convolution backward (2x2 kernel, stride 2, padding 0): convolution of "
        "grad_out (1x2x6x6) with W (4x2x2x2) -> grad of input (1x4x3x3); correlation of "
        "grad_out with the input (1x4x3x3) -> grad of W (4x2x2x2); grad_out summed over "
        "batch and positions -> grad of bias (2)"
    )


def _checkpointed_run(trace: bool) -> tuple[int, int, list[torch.Tensor], BackwardTrace | None]:
    """A conv block under ``checkpoint`` (its saved tensors behind checkpoint's hooks), then
    a head and the loss whose saved tensors go through counting hooks. Returns the block's
    forward runs (each unpack of a checkpointed tensor reruns it), the counted unpacks,
    the gradients, and the full-detail trace."""
    runs = unpacks = 0

    def unpack(t: torch.Tensor) -> torch.Tensor:
        nonlocal unpacks
        unpacks += 1
        return t

    torch.manual_seed(0)
    convs, head = _Convs(), nn.Linear(150, 5)

    def block(x: torch.Tensor) -> torch.Tensor:
        nonlocal runs
        runs += 1
        return convs(x).relu()

    with torch.autograd.graph.saved_tensors_hooks(lambda t: t, unpack):
        h = checkpoint(block, torch.randn(3, 2, 9, 9), use_reentrant=False)
        loss = F.cross_entropy(head(h.flatten(1)), TARGETS[:3])
    model = nn.ModuleDict({"convs": convs, "head": head})
    traced = trace_backward(loss, model, detail="full") if trace else None
    if not trace:
        loss.backward()
    return runs, unpacks, [p.grad for p in model.parameters()], traced  # type: ignore[misc]


def test_a_checkpointed_model_in_full_detail_unpacks_nothing_of_its_own() -> None:
    plain_runs, plain_unpacks, plain_grads, _ = _checkpointed_run(trace=False)
    runs, unpacks, grads, trace = _checkpointed_run(trace=True)
    assert (runs, unpacks) == (plain_runs, plain_unpacks) == (2, plain_unpacks)
    assert plain_unpacks > 0
    assert all(torch.equal(a, b) for a, b in zip(plain_grads, grads, strict=True))
    assert trace is not None
    assert _event(trace, "NllLossBackward0").explanation == (
        f"NLL loss backward (mean): -1/N {WHERE}; N = the count of targets other than "
        "ignore_index -100, not read: it is behind a saved-tensor hook"
    )
    conv1 = _event(trace, "ConvolutionBackward0", 1)  # its input's shape is behind the hook
    assert "correlation of the input with grad_out -> grad of W (4x2x3x3)" in conv1.explanation
    assert _event(trace, "AddmmBackward0").explanation.startswith(
        "Addmm backward (Linear): grad_out (3x5) @ W (5x150) -> grad of input (3x150)"
    )  # sizes are attributes, not saved tensors


@pytest.mark.parametrize("detail", ["full", "norm"])
def test_a_deferred_trace_reads_the_seed_after_the_backward(detail: str) -> None:
    lines = []
    for defer in (False, True):
        torch.manual_seed(0)
        model = _Mlp()
        loss = F.cross_entropy(model(torch.randn(6, 12)), TARGETS) * 3
        with BackwardTracer(loss, model, detail=detail, defer=defer) as tracer, ScalarReads() as m:
            loss.backward()
        assert (m.reads == 0) is defer  # deferred: g and N are read when the trace is
        lines.append(_event(tracer.trace, "NllLossBackward0").explanation)
    assert lines[0] == lines[1] and "-g/N = -3/6" in lines[0]


def test_norm_detail_reads_only_a_reduced_losss_one_number() -> None:
    torch.manual_seed(0)
    logits = _Mlp()(torch.randn(6, 12))
    loss = F.cross_entropy(logits, TARGETS)
    relu = logits.grad_fn.next_functions[1][0]  # fc2's input  # type: ignore[union-attr]
    assert type(relu).__name__ == "ReluBackward0"
    assert needs_facts(relu, full=True) and not needs_facts(relu, full=False)
    assert facts_before(relu, full=False) == {}
    assert needs_facts(loss.grad_fn, full=False)  # type: ignore[arg-type]
    none = F.cross_entropy(logits, TARGETS, reduction="none")
    assert not needs_facts(none.grad_fn, full=False)  # type: ignore[arg-type]


def test_a_loss_without_facts_claims_no_scale() -> None:
    assert explain("NllLossBackward0", {}, None, []) == (
        "NLL loss backward: the scaled, negated gradient at each sample's target"
    )
    assert explain("MseLossBackward0", {}, None, [None]) == (
        "MSE loss backward: 2*(input - target), scaled, to the input"
    )
