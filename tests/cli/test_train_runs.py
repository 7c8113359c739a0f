"""``gradsight train`` run folders that hold up: failures, Ctrl-C, resume, paths, bad --out.

Each test runs the real CLI in-process and asserts the exit code, the one-line message and
the files left behind.
"""

from __future__ import annotations

import io
import json
import textwrap
from pathlib import Path

import pytest
import torch

from gradsight.cli import ExitCode, main
from gradsight.train.runfiles import read_metrics

FAST = ["--data", "synthetic", "--epochs", "2", "--batch-size", "32", "--device", "cpu"]
REPORTS = ("curves.png", "gradflow.png", "report.html")

MODELS = '''
import os
import torch
from torch import nn


class Flaky(nn.Module):
    """An MLP with dropout; raises what GS_RAISE names at training forward number GS_AT."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(256, 32)
        self.drop = nn.Dropout(0.3)
        self.fc2 = nn.Linear(32, 10)
        self.calls = 0

    def forward(self, x):
        if self.training and torch.is_grad_enabled():
            if self.calls == int(os.environ.get("GS_AT", "-1")):
                if os.environ["GS_RAISE"] == "interrupt":
                    raise KeyboardInterrupt
                raise RuntimeError("boom in the user's model")
            self.calls += 1
        return self.fc2(self.drop(torch.relu(self.fc1(x.flatten(1)))))


class Log(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(256, 10)

    def forward(self, x):
        return torch.log(self.fc(x.flatten(1)))
'''


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def models(tmp_path: Path) -> Path:
    path = tmp_path / "nets.py"
    path.write_text(textwrap.dedent(MODELS))
    return path


def _summary(run: Path) -> dict[str, object]:
    return json.loads((run / "summary.json").read_text())  # type: ignore[no-any-return]


def test_a_failing_user_model_leaves_a_whole_run_folder(
    tmp_path: Path, models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GS_AT", "4")
    monkeypatch.setenv("GS_RAISE", "runtime")
    run = tmp_path / "run"
    code, _, err = run_cli("train", *FAST, "--model", f"{models}:Flaky", "--out", str(run))
    assert code == ExitCode.FAILED == 1
    assert "Traceback" in err and 'nets.py", line' in err  # their traceback: their code
    last = err.strip().splitlines()[-1]
    assert last == (
        "gradsight: training failed: RuntimeError: boom in the user's model; the run folder "
        f"{run} keeps its summary, plots, report and newest checkpoint"
    )
    summary = _summary(run)
    assert summary["status"] == "failed"
    assert summary["stop_reason"] == "RuntimeError: boom in the user's model"
    assert summary["epochs_completed"] == 0 and summary["steps"] == 4
    assert all((run / name).is_file() for name in REPORTS)


def test_ctrl_c_exits_130_with_reports_and_resumes_bit_identically(
    tmp_path: Path, models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = [*FAST, "--model", f"{models}:Flaky"]
    reference = tmp_path / "reference"
    assert run_cli("train", *args, "--out", str(reference))[0] == ExitCode.OK
    monkeypatch.setenv("GS_AT", "20")  # inside epoch 2, after the epoch-1 checkpoint
    monkeypatch.setenv("GS_RAISE", "interrupt")
    run = tmp_path / "run"
    code, _, err = run_cli("train", *args, "--out", str(run))
    assert code == ExitCode.INTERRUPTED == 130
    assert f"gradsight: interrupted; partial run kept in {run}" in err
    assert _summary(run)["status"] == "interrupted"
    assert all((run / name).is_file() for name in REPORTS)
    assert (run / "checkpoints" / "step-00000016.pt").is_file()
    monkeypatch.delenv("GS_AT")
    checkpoint = run / "checkpoints" / "step-00000016.pt"
    code, out, err = run_cli("train", "--resume", str(checkpoint))  # a file, not the folder
    assert code == ExitCode.OK, err
    assert "from step-00000016.pt: step 16" in out
    resumed = torch.load(run / "model.pt", weights_only=True)
    expected = torch.load(reference / "model.pt", weights_only=True)
    assert all(torch.equal(resumed[k], expected[k]) for k in expected)  # dropout masks too
    env = json.loads((run / "env.json").read_text())
    assert [r["step"] for r in env["resumes"]] == [16]


def test_resume_with_checkpoints_kept_elsewhere(
    tmp_path: Path, models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GS_AT", "20")
    monkeypatch.setenv("GS_RAISE", "interrupt")
    run, elsewhere = tmp_path / "run", tmp_path / "ckpts"
    args = [*FAST, "--model", f"{models}:Flaky", "--checkpoint-dir", str(elsewhere)]
    assert run_cli("train", *args, "--keep-checkpoints", "1", "--out", str(run))[0] == 130
    assert sorted(p.name for p in elsewhere.iterdir()) == [
        "last.pt", "last.pt.sha256", "step-00000016.pt", "step-00000016.pt.sha256",
    ]  # fmt: skip
    assert not (run / "checkpoints").exists()
    monkeypatch.delenv("GS_AT")
    code, _, err = run_cli("train", "--resume", str(run), "--checkpoint-dir", str(elsewhere))
    assert code == ExitCode.OK, err
    assert _summary(run)["status"] == "completed" and _summary(run)["steps"] == 32
    assert sorted(p.name for p in elsewhere.iterdir() if p.suffix == ".pt") == [
        "last.pt", "step-00000032.pt",
    ]  # fmt: skip  # --keep-checkpoints 1 came back from config.json


def test_resume_refuses_a_typed_option_even_at_its_default(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert run_cli("train", *FAST, "--lr", "0.1", "--out", str(run))[0] == ExitCode.OK
    code, _, err = run_cli("train", "--resume", str(run), "--lr", "0.01")  # 0.01: the default
    assert code == ExitCode.USAGE
    assert err.strip() == (
        "gradsight: error: --resume continues the run with its saved config, but --lr 0.01 "
        "differs from the saved 0.1; drop it (or start a new run)"
    )


def test_out_under_a_file_is_one_line(tmp_path: Path) -> None:
    afile = tmp_path / "notes.txt"
    afile.write_text("not a folder")
    code, _, err = run_cli("train", *FAST, "--out", str(afile / "run"))
    assert code == ExitCode.USAGE
    assert err.strip() == (
        f"gradsight: error: --out {afile / 'run'}: {afile} is a file, not a folder; choose "
        "another --out"
    )
    assert afile.read_text() == "not a folder" and sorted(tmp_path.iterdir()) == [afile]


def test_relative_paths_are_saved_absolute_and_work_from_elsewhere(
    tmp_path: Path, models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli("train", *FAST, "--epochs", "1", "--model", "nets.py:Flaky",
                           "--out", "run")  # fmt: skip
    assert code == ExitCode.OK, err
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["model"] == f"{models}:Flaky"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    run = str(tmp_path / "run")
    assert run_cli("report", run, "--out", "r.html")[0] == ExitCode.OK
    code, _, err = run_cli("export", run, "--format", "safetensors", "--out", "m.safetensors")
    assert code == ExitCode.OK, err
    assert (elsewhere / "r.html").is_file() and (elsewhere / "m.safetensors").is_file()


def test_a_stop_at_step_0_invents_no_epoch_metrics(tmp_path: Path, models: Path) -> None:
    run = tmp_path / "run"
    code, _, _ = run_cli("train", *FAST, "--model", f"{models}:Log", "--out", str(run))
    assert code == ExitCode.NONFINITE
    (epoch,) = [m for m in read_metrics(run / "metrics.jsonl") if m["kind"] == "epoch"]
    assert (epoch["train_loss"], epoch["train_acc"], epoch["complete"]) == (None, None, False)
    summary = _summary(run)
    assert (summary["status"], summary["epochs_completed"], summary["steps"]) == ("stopped", 0, 1)
