"""The README's promise: the defaults learn the bundled data to >= 80% test accuracy."""

from __future__ import annotations

import io
from pathlib import Path

from gradsight.cli import main
from gradsight.train.runfiles import read_metrics


def _train(out: Path) -> list[dict[str, object]]:
    stdout, stderr = io.StringIO(), io.StringIO()
    code = main(
        ["train", "--device", "cpu", "--quiet", "--out", str(out)], stdout=stdout, stderr=stderr
    )
    assert code == 0, stderr.getvalue()
    return read_metrics(out / "metrics.jsonl")


def test_defaults_reach_80_percent_and_repeat_exactly(tmp_path: Path) -> None:
    first = _train(tmp_path / "a")
    epochs = [m for m in first if m["kind"] == "epoch"]
    assert len(epochs) == 3  # the default
    final_acc = epochs[-1]["test_acc"]
    assert isinstance(final_acc, float) and final_acc >= 0.80, final_acc
    second = _train(tmp_path / "b")

    def without_time(rows: list[dict[str, object]]) -> list[dict[str, object]]:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]

    assert without_time(first) == without_time(second)
