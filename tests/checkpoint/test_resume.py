"""Cutting a run's logs back to a checkpoint's step."""

from __future__ import annotations

import json
from pathlib import Path

from gradsight.checkpoint import truncate_log


def test_truncate_log_drops_later_steps_and_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    lines = [{"kind": "step", "step": s} for s in (4, 8, 12)] + [{"kind": "note"}]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines) + '{"kind": "st')
    assert truncate_log(path, 8) == 2
    kept = [json.loads(x) for x in path.read_text().splitlines()]
    assert kept == [lines[0], lines[1], lines[3]]
    assert truncate_log(path, 8) == 0
    assert truncate_log(tmp_path / "missing.jsonl", 8) == 0
    assert not (tmp_path / "missing.jsonl").exists()
