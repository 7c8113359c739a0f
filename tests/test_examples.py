"""The scripts in examples/ run, on the CPU, and leave a complete run folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize(
    ("script", "steps"), [("plain_loop_resnet.py", "6"), ("language_model.py", "150")]
)
def test_example_runs_and_leaves_a_run_folder(tmp_path: Path, script: str, steps: str) -> None:
    run_dir = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), "--run-dir", str(run_dir), "--steps", steps],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["status"], summary["steps"], summary["findings"]) == (
        "completed", int(steps), 0,
    )  # fmt: skip
    assert all((run_dir / name).is_file() for name in ("trace.json", "report.html", "curves.png"))
    assert f"run folder: {run_dir}" in done.stdout


def test_the_language_model_learns() -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "language_model.py"), "--run-dir", "", "--steps", "150"],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    final = float(done.stdout.split("final loss ")[1].split(";")[0])
    assert final < 1.0  # from ln(17) = 2.83: the counting pattern is learnt
