"""The learning-rate range test (Smith, 2017): raise the lr exponentially, one step per lr,
on a copy of the model, and read where the loss falls fastest and where it blows up."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from gradsight.preflight.config import CheckConfig
from gradsight.preflight.guard import copy_training
from gradsight.preflight.probe import LossFn
from gradsight.preflight.result import Check

__all__ = ["LrSweep", "check_lr_range", "lr_sweep"]

#: Smoothing of the swept loss (an exponential moving average, bias-corrected).
BETA = 0.8
#: The loss has blown up once a step's loss is this many times the best smoothed loss.
BLOWUP = 4.0
#: The suggestion is the lr of the lowest smoothed loss divided by this (one decade below,
#: where the loss still falls steeply); an lr this many times below it is "far below".
BELOW_MIN, FAR_BELOW = 10.0, 100.0
#: The sweep found a useful lr only if the smoothed loss fell below this fraction of its start.
FELL = 0.9


@dataclass(frozen=True)
class LrSweep:
    """The losses of one sweep, one per lr, and what they suggest."""

    lrs: list[float]  # the lr of each step run
    losses: list[float]  # the loss at that step, before its update
    smoothed: list[float]  # their moving average (finite steps only)
    min_lr: float  # lr of the lowest smoothed loss
    blowup_lr: float | None  # first lr whose loss blew up, None if none did
    optimizer: str

    @property
    def fell(self) -> bool:
        """Whether the loss fell at all before it blew up."""
        return bool(self.smoothed) and min(self.smoothed) < FELL * self.smoothed[0]

    @property
    def suggested_lr(self) -> float | None:
        """A decade below the lr of the lowest loss; None if the loss never fell."""
        return self.min_lr / BELOW_MIN if self.fell else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "lrs": self.lrs, "losses": self.losses, "smoothed": self.smoothed,
            "min_lr": self.min_lr, "blowup_lr": self.blowup_lr,
            "suggested_lr": self.suggested_lr, "fell": self.fell, "optimizer": self.optimizer,
        }  # fmt: skip


def _schedule(config: CheckConfig) -> list[float]:
    lo, hi, n = math.log(config.lr_min), math.log(config.lr_max), config.lr_steps
    return [math.exp(lo + (hi - lo) * i / (n - 1)) for i in range(n)]


def lr_sweep(
    model: nn.Module, batches: list[tuple[Tensor, Tensor]], loss_fn: LossFn,
    optimizer: torch.optim.Optimizer | None, config: CheckConfig,
) -> LrSweep:  # fmt: skip
    """Sweep the lr from ``config.lr_min`` to ``lr_max`` over successive ``batches`` on a
    copy of ``model`` with a fresh copy of ``optimizer`` (plain SGD without one); parameter
    groups keep their lr ratios. Stops at the first blown-up or NaN/Inf loss.

    Raises:
        ValueError: the model has no trainable parameter.
    """
    twin, opt = copy_training(model, optimizer)
    if opt is None:
        opt = torch.optim.SGD([p for p in twin.parameters() if p.requires_grad], lr=config.lr_min)
    base = [float(g["lr"]) for g in opt.param_groups]
    scale = [b / base[0] if base[0] else 1.0 for b in base]
    lrs, losses, smoothed = [], [], []
    avg, best, best_lr, blowup = 0.0, math.inf, config.lr_min, None
    for i, lr in enumerate(_schedule(config)):
        for group, s in zip(opt.param_groups, scale, strict=True):
            group["lr"] = lr * s
        x, y = batches[i % len(batches)]
        loss = loss_fn(twin(x), y)
        lrs.append(lr)
        losses.append(float(loss.detach()))
        if not math.isfinite(losses[-1]) or (i >= 5 and losses[-1] > BLOWUP * best):
            blowup = lr
            break
        avg = BETA * avg + (1 - BETA) * losses[-1]
        smoothed.append(avg / (1 - BETA ** (i + 1)))
        if smoothed[-1] < best:
            best, best_lr = smoothed[-1], lr
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return LrSweep(lrs, losses, smoothed, best_lr, blowup, type(opt).__name__)


def _where(sweep: LrSweep) -> str:
    end = (f"blew up at {sweep.blowup_lr:.2g}" if sweep.blowup_lr
           else f"never blew up up to {sweep.lrs[-1]:.2g}")  # fmt: skip
    if not sweep.fell:
        return f"the loss never fell by {1 - FELL:.0%} from {sweep.lrs[0]:.2g} on and {end}"
    return f"the loss was lowest at lr {sweep.min_lr:.2g} and {end}"


def check_lr_range(sweep: LrSweep, configured: float | None) -> Check:
    """Compare the configured lr with the sweep's suggestion and blow-up point."""
    name, suggested, where = "lr_range", sweep.suggested_lr, _where(sweep)
    details = {**sweep.to_dict(), "configured_lr": configured}
    fix = f"Use an lr near {suggested:.2g} (--lr {suggested:.2g})." if suggested else ""
    if configured is not None and sweep.blowup_lr is not None and configured >= sweep.blowup_lr:
        return Check(name, "fail", suggested, f"The lr {configured:.3g} is past the blow-up "
                     f"point: {where}, so training will diverge.",
                     fix or "Lower the lr by 10x or more.", details)  # fmt: skip
    if suggested is None:
        return Check(
            name, "warn", None, f"With {sweep.optimizer}, {where} ({len(sweep.lrs)} steps): "
            "the model learns too slowly to show a good lr.", "Look at activation_scale and "
            "grad_ratio; try momentum 0.9 or Adam, or normalisation layers.", details,
        )  # fmt: skip
    if configured is None:
        return Check(name, "pass", suggested, f"With {sweep.optimizer}, {where}: start near "
                     f"{suggested:.2g}.", "", details)  # fmt: skip
    if configured < suggested / FAR_BELOW:
        return Check(name, "warn", suggested, f"The lr {configured:.3g} is over {FAR_BELOW:.0f}x "
                     f"below the suggested {suggested:.2g} ({where}): training will crawl.",
                     fix, details)  # fmt: skip
    return Check(name, "pass", suggested, f"The lr {configured:.3g} suits {sweep.optimizer}: "
                 f"{where} (suggested {suggested:.2g}).", "", details)  # fmt: skip
