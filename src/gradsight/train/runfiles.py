"""The run folder's files as the recorder writes them and the reports read them back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["RUN_FILES", "read_metrics"]

#: What every run folder holds once training has ended.
RUN_FILES = ("config.json", "env.json", "metrics.jsonl", "model.pt", "summary.json")


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Read ``metrics.jsonl`` back as a list of dicts (one per line)."""
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
