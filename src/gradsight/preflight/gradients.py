"""Checks of the gradients at initialisation: parameters that get none, and per-layer
``||grad|| / ||weight||`` ratios, read from the probe's backward pass."""

from __future__ import annotations

import torch
from torch import nn

from gradsight.preflight.activations import names
from gradsight.preflight.probe import ParamStat
from gradsight.preflight.result import Check

__all__ = ["check_grad_ratio", "check_missing_grad"]

#: ``||grad|| / ||weight||`` below this vanishes (the gradient monitor's own threshold) ...
RATIO_LOW = 1e-6
#: ... and above this one SGD step at lr 0.01 would change the weight by its own size.
RATIO_HIGH = 1e2
#: Spread between the most and least moved layers above which some layers barely learn.
SPREAD = 1e4


def _outside_optimizer(model: nn.Module, optimizer: torch.optim.Optimizer | None) -> list[str]:
    if optimizer is None:
        return []
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    return [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in held]


def check_missing_grad(
    params: list[ParamStat], model: nn.Module, optimizer: torch.optim.Optimizer | None
) -> Check:
    """Every trainable parameter gets a non-zero gradient and is in the optimizer."""
    name = "missing_grad"
    frozen = [p.name for p in params if not p.requires_grad]
    no_grad = [p.name for p in params if p.requires_grad and not p.has_grad]
    zero = [p.name for p in params if p.has_grad and p.grad_norm == 0]
    outside = _outside_optimizer(model, optimizer)
    idle = set(frozen) | set(no_grad) | set(zero) | set(outside)
    details = {"frozen": frozen, "no_grad": no_grad, "zero_grad": zero, "not_in_optimizer": outside}
    value = f"{len(idle)} of {len(params)}"
    reasons = [
        f"{names(frozen)} frozen (requires_grad=False)" if frozen else "",
        f"{names(no_grad)} got no gradient (detached or unused in forward)" if no_grad else "",
        f"{names(zero)} got an all-zero gradient" if zero else "",
        f"{names(outside)} not in the optimizer" if outside else "",
    ]
    why = "; ".join(r for r in reasons if r)
    if not params or len(idle) == len(params):
        return Check(
            name, "fail", value, f"No parameter will be trained: {why or 'the model has none'}.",
            "Set requires_grad=True, remove .detach()/torch.no_grad() from forward, and give "
            "the optimizer model.parameters().", details,
        )  # fmt: skip
    if idle:
        return Check(
            name, "warn", value, f"{len(idle)} of {len(params)} parameter tensors will not be "
            f"updated: {why}.", "Unfreeze or remove them if that is not on purpose; for a "
            "zero gradient look at the dead_relu check.", details,
        )  # fmt: skip
    return Check(name, "pass", value, f"All {len(params)} parameter tensors get a non-zero "
                 "gradient.", "", details)  # fmt: skip


def check_grad_ratio(params: list[ParamStat]) -> Check:
    """Per weight (2+ dims), ``||grad|| / ||weight||``: NaN/Inf, vanishing, exploding, spread."""
    name = "grad_ratio"
    broken = [p.name for p in params if not p.finite]
    if broken:
        return Check(
            name,
            "fail",
            "nonfinite",
            f"The gradient of {names(broken)} holds NaN/Inf at the first step.",
            "Run gradsight train (or watch) to see where the "
            "NaN is born; often a log/sqrt/division of 0.",
            {"nonfinite": broken},
        )
    ratios = {
        p.name: (p.grad_norm or 0.0) / p.weight_norm
        for p in params if p.has_grad and len(p.shape) >= 2 and p.weight_norm > 0
    }  # fmt: skip
    if not ratios:
        return Check(name, "pass", None, "No weight matrix or kernel got a gradient to judge.")
    lo_name, hi_name = min(ratios, key=ratios.__getitem__), max(ratios, key=ratios.__getitem__)
    lo, hi = ratios[lo_name], ratios[hi_name]
    value = f"{lo:.2g}..{hi:.2g}"
    fix = ("Use a variance-preserving init, normalisation layers or residual connections; "
           "scale the loss or the last layer if every ratio is off.")  # fmt: skip
    if lo < RATIO_LOW:
        msg = (f"{lo_name} gets a gradient {lo:.2g} times its weight: it will barely learn "
               "(vanishing gradient).")  # fmt: skip
    elif hi > RATIO_HIGH:
        msg = (f"{hi_name} gets a gradient {hi:.2g} times its weight: every step will "
               "overwrite it (exploding gradient).")  # fmt: skip
    elif hi / lo > SPREAD:
        msg = (f"{hi_name} moves {hi / lo:.2g}x faster than {lo_name} for the same lr: the "
               "slow layers will hardly train.")  # fmt: skip
    else:
        return Check(name, "pass", value, f"Per-layer ||grad||/||weight|| spans {value}, within "
                     f"{SPREAD:.0e} of each other.", "", ratios)  # fmt: skip
    return Check(name, "warn", value, msg, fix, ratios)
