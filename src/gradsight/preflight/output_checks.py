"""Checks of the model's output at initialisation: its shape, logits or probabilities, the
first loss against ln(C)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from gradsight.preflight.probe import Probe
from gradsight.preflight.result import Check, Status

__all__ = ["check_initial_loss", "check_logits", "check_output_shape", "output_kind"]

_FIX_SHAPE = "Make forward(x) return logits of shape (batch, classes), one row per input."


def check_output_shape(probe: Probe, loss_kind: str) -> Check:
    """The forward pass runs and returns one row of at least 2 outputs per sample."""
    name, batch = "output_shape", probe.inputs.shape[0]
    if probe.output is None:
        return Check(name, "fail", "error", f"The forward pass failed: {probe.error}.", _FIX_SHAPE)
    shape = list(probe.output.shape)
    if not shape or shape[0] != batch:
        return Check(name, "fail", str(shape), f"The model returned {shape} for a batch of "
                     f"{batch}; the first dimension must be the batch.", _FIX_SHAPE)  # fmt: skip
    if loss_kind != "other" and (len(shape) < 2 or shape[1] < 2):
        return Check(
            name, "fail", str(shape), f"The model returned {shape}: cross-entropy needs at "
            "least 2 class scores per sample (with 1 the loss is always 0).",
            "Give the last layer one output per class, or use BCEWithLogitsLoss for one output.",
        )  # fmt: skip
    return Check(name, "pass", str(shape), f"The model returns {shape} for a batch of {batch}.")


def output_kind(out: Tensor) -> str:
    """``probabilities``, ``log-probabilities``, ``bounded`` (all in 0..1) or ``logits``:
    what the rows of a (B, C, ...) output look like."""
    y = out.detach().double()
    sums = y.sum(dim=1)
    if bool((y >= -1e-6).all()) and bool(((sums - 1).abs() < 1e-3).all()):
        return "probabilities"
    if bool((y <= 1e-6).all()) and bool((torch.logsumexp(y, dim=1).abs() < 1e-3).all()):
        return "log-probabilities"
    if bool(((y >= 0) & (y <= 1)).all()):
        return "bounded"
    return "logits"


def check_logits(probe: Probe, loss_kind: str) -> Check:
    """The outputs are what the loss expects: logits for cross-entropy, log-probabilities for
    NLL; probabilities into cross-entropy are a double softmax."""
    name = "logits"
    assert probe.output is not None
    kind = output_kind(probe.output)
    if loss_kind == "nll" and kind != "log-probabilities":
        return Check(
            name, "fail", kind, f"NLLLoss expects log-probabilities, but the outputs are {kind}: "
            "its loss is wrong and, on logits, unbounded below.",
            "Apply log_softmax as the model's last step, or use CrossEntropyLoss on the logits.",
        )  # fmt: skip
    if kind == "probabilities" and loss_kind == "cross_entropy":
        return Check(
            name, "fail", kind, "The outputs are probabilities (rows >= 0 summing to 1), and "
            "cross-entropy applies its own softmax: a double softmax whose gradients are "
            "squashed and whose loss cannot fall near 0.",
            "Return the logits (remove the final softmax), or use log_softmax with NLLLoss.",
        )  # fmt: skip
    if kind == "bounded" and loss_kind == "cross_entropy":
        return Check(
            name, "warn", kind, "Every output lies in 0..1 (a sigmoid?), which limits the "
            "logits cross-entropy sees and keeps its loss from falling near 0.",
            "Return unbounded logits (remove the final sigmoid).",
        )  # fmt: skip
    if kind == "probabilities":
        return Check(name, "warn", kind, "The outputs are probabilities; check that the loss "
                     "expects them.", "Return logits if the loss applies a softmax.")  # fmt: skip
    what = {
        "logits": "The outputs are logits, as the loss expects.",
        "log-probabilities": "The outputs are log-probabilities; cross-entropy's log-softmax "
        "leaves them unchanged, so this is equivalent to logits.",
        "bounded": "The outputs lie in 0..1; the loss is not cross-entropy, so they are allowed.",
    }[kind]
    return Check(name, "pass", kind, what)


def check_initial_loss(probe: Probe, loss_kind: str) -> Check:
    """The first loss against ln(C), the loss of uniform predictions, for cross-entropy."""
    name = "initial_loss"
    assert probe.output is not None
    if probe.loss is None:
        return Check(name, "fail", "error", f"The loss raised: {probe.error}.",
                     "Fix the loss inputs; see the labels and output_shape checks.")  # fmt: skip
    if loss_kind == "other" or probe.output.dim() < 2:
        return Check(name, "pass", probe.loss, "The loss is not cross-entropy; ln(C) does not "
                     "apply.")  # fmt: skip
    classes = probe.output.shape[1]
    expected = math.log(classes)
    logit_std = float(probe.output.double().std(dim=1).mean())
    ratio = probe.loss / expected
    details = {"expected": expected, "ratio": ratio, "logit_std": logit_std, "classes": classes}
    status: Status
    if not math.isfinite(probe.loss) or ratio > 3:
        status = "fail"
    elif ratio > 1.5:
        status = "warn"
    else:
        low = " (below chance: trained weights, or labels that leak into the inputs)"
        return Check(
            name, "pass", probe.loss, f"The first loss {probe.loss:.3g} is near ln({classes}) = "
            f"{expected:.3g}, the loss of uniform predictions{low if ratio < 0.5 else ''}.",
            "", details,
        )  # fmt: skip
    return Check(
        name, status, probe.loss, f"The first loss {probe.loss:.4g} is {ratio:.3g}x ln({classes}) "
        f"= {expected:.3g}: the logits start with std {logit_std:.3g} instead of near 0, so "
        "the last layer's scale is too large and the first steps only undo it.",
        "Scale the last layer's initial weights down (e.g. by 0.1, or zero them) and remove "
        "any scaling of the logits.", details,
    )  # fmt: skip
