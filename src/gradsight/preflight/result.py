"""What a check finds: :class:`Check` (one verdict) and :class:`CheckReport` (all of them)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["STATUSES", "Check", "CheckReport", "Status"]

Status = Literal["pass", "warn", "fail"]

#: The statuses a check can end with, mildest first.
STATUSES: tuple[Status, ...] = ("pass", "warn", "fail")

Value = float | int | str | None


def _plain(value: Any) -> Any:
    """Make ``value`` JSON-ready: NaN/Inf become strings, tuples lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class Check:
    """One pre-training check: its verdict, what it measured, what that means, what to do.

    Attributes:
        name: a stable identifier, e.g. ``initial_loss``.
        status: ``pass``, ``warn`` or ``fail``.
        value: the headline measurement (a number or a short text).
        message: one sentence saying what was measured and what it means.
        fix: what to change; empty when nothing needs changing.
        details: further measurements (per channel, per layer, the lr sweep), JSON-ready.
    """

    name: str
    status: Status
    value: Value
    message: str
    fix: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(
                f"status {self.status!r} of check {self.name!r}: use one of {STATUSES}"
            )

    def to_dict(self) -> dict[str, Any]:
        """Return ``{"name", "status", "value", "message", "fix", "details"}``, JSON-ready."""
        return {
            "name": self.name, "status": self.status, "value": _plain(self.value),
            "message": self.message, "fix": self.fix, "details": _plain(self.details),
        }  # fmt: skip


@dataclass(frozen=True)
class CheckReport:
    """Every check of one :func:`~gradsight.check` call, in the order they ran.

    Iterating yields the checks; ``report["initial_loss"]`` finds one by name.
    """

    checks: tuple[Check, ...]
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when no check failed (warnings allowed)."""
        return all(c.status != "fail" for c in self.checks)

    def with_status(self, status: Status) -> list[Check]:
        """The checks that ended with ``status``."""
        return [c for c in self.checks if c.status == status]

    def __iter__(self) -> Iterator[Check]:
        return iter(self.checks)

    def __len__(self) -> int:
        return len(self.checks)

    def __getitem__(self, name: str) -> Check:
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(f"no check named {name!r}; ran: {', '.join(c.name for c in self.checks)}")

    def to_dict(self) -> dict[str, Any]:
        """Return ``{"checks": [...], "ok", "seconds"}``: what ``checks.json`` holds."""
        return {
            "checks": [c.to_dict() for c in self.checks],
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
        }
