"""What the gradient monitor reports: one finding per event, written to ``events.jsonl``."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from gradsight.train.events import Observer, TrainState

__all__ = ["KINDS", "EventLog", "Finding", "Findings"]

KINDS = (
    "nonfinite", "masked", "no_grad", "exploding", "vanishing", "update_ratio", "dead_relu",
    "compiled", "scaler",
)  # fmt: skip


@dataclass(frozen=True)
class Finding:
    """One thing the monitor noticed, with a sentence a person can act on."""

    step: int
    epoch: int
    kind: str  # one of KINDS
    severity: str  # "error" | "warning" | "info"
    message: str
    module: str | None = None
    param: str | None = None
    phase: str | None = None  # "weights" | "input" | "forward" | "backward" | None
    op: str | None = None  # torch function (forward) or autograd node (backward)
    value: float | None = None
    params: tuple[str, ...] = ()  # every parameter concerned; ``param`` is the nearest one
    ranks: tuple[int, ...] = ()  # torchrun: the ranks whose own batch made the NaN/Inf

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["params"], data["ranks"] = list(self.params), list(self.ranks)
        if isinstance(self.value, float) and not math.isfinite(self.value):
            data["value"] = None
        return data


class Findings(list[Finding]):
    """The monitor's findings in the order they came: a list, which Jupyter shows as a
    table once :mod:`gradsight.reports.notebook` is loaded."""

    def errors(self) -> list[Finding]:
        """The findings of severity ``error``."""
        return [f for f in self if f.severity == "error"]


class EventLog(Observer):
    """Append findings to ``<run>/events.jsonl``, one JSON object per line, flushed each time."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._file: IO[str] | None = None

    def write(self, finding: Finding) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
        self._file.write(json.dumps(finding.to_dict()) + "\n")
        self._file.flush()

    def close(self) -> None:
        """Close the file (a later finding opens it again, appending)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def on_train_end(self, state: TrainState, status: str) -> None:
        self.close()
