"""The run folder's files as the recorder writes them and the reports read them back."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

__all__ = ["RUN_FILES", "json_safe", "read_metrics", "write_json"]

#: What every run folder holds once training has ended.
RUN_FILES = ("config.json", "env.json", "metrics.jsonl", "model.pt", "summary.json")


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Read ``metrics.jsonl`` back as a list of dicts (one per line)."""
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def json_safe(value: Any) -> Any:
    """Map NaN/Inf floats (also inside dicts) to None so every line stays valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    return value


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON (NaN/Inf as null)."""
    path.write_text(json.dumps(json_safe(data), indent=2) + "\n", encoding="utf-8")
