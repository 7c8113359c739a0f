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


def test_the_lightning_example_stops_on_a_planted_nan(tmp_path: Path) -> None:
    pytest.importorskip("lightning")
    script = str(EXAMPLES / "lightning_vit.py")
    common = ["--epochs", "1", "--images", "512"]
    healthy = subprocess.run(
        [sys.executable, script, "--run-dir", str(tmp_path / "ok"), *common],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert healthy.returncode == 0, healthy.stderr
    assert "completed after 8 steps" in healthy.stdout
    assert (tmp_path / "ok" / "report.html").is_file()
    broken = subprocess.run(
        [sys.executable, script, "--run-dir", str(tmp_path / "nan"), "--nan-at-step", "3", *common],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert broken.returncode == 0, broken.stderr
    assert "stopped after 4 steps" in broken.stdout
    assert "gradsight, step 3: " in broken.stdout and "encoder.1" in broken.stdout
    events = [json.loads(line) for line in (tmp_path / "nan" / "events.jsonl").open()]
    assert (events[0]["module"], events[0]["op"]) == ("encoder.1", "sqrt")
