"""Can the model overfit one small batch? Adam on a copy of the model, until the loss is ~0."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from gradsight.preflight.config import CheckConfig
from gradsight.preflight.guard import copy_training
from gradsight.preflight.probe import LossFn
from gradsight.preflight.result import Check

__all__ = ["check_overfit", "overfit_losses"]

#: A final loss above this fraction of the first one means the model cannot fit the batch.
STUCK = 0.25


def overfit_losses(
    model: nn.Module, inputs: Tensor, targets: Tensor, loss_fn: LossFn, config: CheckConfig
) -> list[float]:
    """Train a copy of ``model`` on one batch with Adam; return the loss before each step and
    after the last, stopping once it is at most ``config.overfit_target`` or not finite."""
    twin, _ = copy_training(model, None)
    params = [p for p in twin.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=config.overfit_lr) if params else None
    losses: list[float] = []
    for step in range(config.overfit_steps + 1):
        loss = loss_fn(twin(inputs), targets)
        losses.append(float(loss.detach()))
        done = losses[-1] <= config.overfit_target or not math.isfinite(losses[-1])
        if optimizer is None or done or step == config.overfit_steps:
            break
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return losses


def check_overfit(
    model: nn.Module, inputs: Tensor, targets: Tensor, loss_fn: LossFn, config: CheckConfig,
    suspects: list[Check],
) -> Check:  # fmt: skip
    """Judge whether the model drives the loss of one small batch close to 0.

    Args:
        suspects: the other checks that warned or failed: what a failure points to.
    """
    name, n = "overfit_batch", inputs.shape[0]
    try:
        losses = overfit_losses(model, inputs, targets, loss_fn, config)
    except Exception as exc:  # a model that cannot be copied, or fails when trained
        return Check(
            name,
            "warn",
            "error",
            f"The overfit test could not run: {exc!r}.",
            "Make the model copyable with copy.deepcopy, or run the test yourself.",
        )
    first, last, steps = losses[0], losses[-1], len(losses) - 1
    details = {"samples": n, "steps": steps, "losses": losses, "target": config.overfit_target}
    if last <= config.overfit_target:
        return Check(name, "pass", last, f"Overfit {n} samples in {steps} Adam steps (loss "
                     f"{first:.3g} -> {last:.3g}).", "", details)  # fmt: skip
    pointers = ", ".join(f"{c.name} ({c.status})" for c in suspects)
    hint = (f"; the other checks point to: {pointers}" if pointers
            else "; no other check explains it: does the output depend on the input?")  # fmt: skip
    if math.isfinite(last) and last <= STUCK * first:
        return Check(
            name, "warn", last, f"The loss of {n} samples fell from {first:.3g} to {last:.3g} "
            f"in {steps} steps but not to about 0{hint}.",
            "Look at the checks named, or try more steps or another lr.", details,
        )  # fmt: skip
    return Check(
        name, "fail", last, f"The model cannot overfit {n} samples: the loss went from "
        f"{first:.3g} to {last:.3g} in {steps} Adam steps{hint}.",
        "Fix what the checks named show first; else look for a bug that cuts the output off "
        "the input (a detach, a wrong reshape, a constant output).", details,
    )  # fmt: skip
