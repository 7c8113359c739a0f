"""Mixed precision's loss scaling: a step the ``GradScaler`` skips is expected, until it repeats.

With ``torch.amp.GradScaler`` the loss is multiplied by a large scale so that fp16
gradients do not underflow; when that makes a gradient overflow to Inf/NaN, ``scaler.step``
skips the update and ``scaler.update`` halves the scale. A few such steps (at the start, or
after the scale grows) are the scaler doing its job, not a fault. The gradients are broken
when the skips go on: NaN/Inf at every scale, so the scale keeps falling.
"""

from __future__ import annotations

from typing import Any, Protocol

from gradsight.health.findings import Finding

__all__ = ["ScalerWatch", "grad_factor"]


class Scaler(Protocol):
    """What the monitor reads of a ``torch.amp.GradScaler``."""

    def is_enabled(self) -> bool: ...

    def get_scale(self) -> float: ...


def _unscaled(scaler: Any) -> bool:
    """Whether ``scaler.unscale_(optimizer)`` ran this step (for some optimizer)."""
    states = getattr(scaler, "_per_optimizer_states", None)
    if not states:  # reset by update(): nothing unscaled since
        return False
    return any(getattr(s.get("stage"), "name", None) == "UNSCALED" for s in states.values())


def grad_factor(scaler: Scaler | None) -> float:
    """What the gradients in ``.grad`` must be multiplied by to be the true ones: 1 without a
    scaler or after ``scaler.unscale_(optimizer)``, else ``1 / scale``.

    >>> import torch
    >>> grad_factor(torch.amp.GradScaler("cpu", init_scale=1024.0))
    0.0009765625
    """
    if scaler is None or not scaler.is_enabled() or _unscaled(scaler):
        return 1.0
    return 1.0 / scaler.get_scale()


class ScalerWatch:
    """Count the steps a ``GradScaler`` skips; report when they repeat.

    A report comes when ``patience`` steps in a row were skipped, or when the scale falls
    below 1 (the loss is then scaled *down*: even unscaled gradients overflow). Each run of
    skips is reported once.

    >>> watch = ScalerWatch(patience=3)
    >>> [watch.skipped_step(s, 0, 2.0**(10 - s)) is not None for s in range(4)]
    [False, False, True, False]
    >>> watch.skipped, watch.in_a_row
    (4, 4)
    """

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.skipped = 0  # steps skipped in the whole run
        self.in_a_row = 0
        self._reported = False  # for this run of skips

    def finite_step(self) -> None:
        """A step whose gradients were finite: the run of skips, if any, is over."""
        self.in_a_row = 0
        self._reported = False

    def skipped_step(self, step: int, epoch: int, scale: float) -> Finding | None:
        """Count a step the scaler skips (its gradients held NaN/Inf at ``scale``); return a
        finding when the skips repeat."""
        self.skipped += 1
        self.in_a_row += 1
        if self._reported or (self.in_a_row < self.patience and scale >= 1.0):
            return None
        self._reported = True
        why = (
            f"{self.in_a_row} steps in a row"
            if self.in_a_row >= self.patience
            else f"the scale fell to {scale:g}, below 1"
        )
        msg = (
            f"the GradScaler skipped {why} (scale now {scale:g}, {self.skipped} skipped in all): "
            "the gradients are NaN/Inf at every scale, not an fp16 overflow"
        )
        return Finding(step, epoch, "scaler", "error", msg, value=scale)

    def state_dict(self) -> dict[str, int | bool]:
        return {"skipped": self.skipped, "in_a_row": self.in_a_row, "reported": self._reported}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.skipped = int(state.get("skipped", 0))
        self.in_a_row = int(state.get("in_a_row", 0))
        self._reported = bool(state.get("reported", False))
