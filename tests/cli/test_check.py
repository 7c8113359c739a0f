"""``gradsight check`` run in-process: the table, ``--json``, ``--out``, exit codes, the
report section, and the hook ``gradsight train --check`` calls."""

from __future__ import annotations

import base64
import io
import json
import re
import time
from pathlib import Path

import pytest
import torch
from rich.console import Console

from gradsight.cli import ExitCode, main
from gradsight.cli import check as check_cmd
from gradsight.config import TrainConfig
from gradsight.reports.html import write_report
from gradsight.train import prepare

FAST = ["--data", "synthetic", "--device", "cpu"]
KEYS = {"name", "status", "value", "message", "fix", "details"}


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_default_check_on_the_bundled_data_passes_in_seconds(tmp_path: Path) -> None:
    start = time.perf_counter()
    code, out, err = run_cli("check", "--device", "cpu", "--json", "--out", str(tmp_path / "c"))
    assert time.perf_counter() - start < 60
    assert code == ExitCode.OK, err
    data = json.loads(out)
    assert set(data) == {"checks", "ok", "seconds"} and data["ok"] is True
    assert all(set(c) == KEYS for c in data["checks"]) and len(data["checks"]) == 15
    assert {c["status"] for c in data["checks"]} == {"pass"}, [
        (c["name"], c["message"]) for c in data["checks"] if c["status"] != "pass"]  # fmt: skip
    assert json.loads((tmp_path / "c" / "checks.json").read_text())["checks"] == data["checks"]
    assert (tmp_path / "c" / "lr_range.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_table_output_and_exit_1_for_lr_10(tmp_path: Path) -> None:
    code, out, err = run_cli("check", *FAST, "--lr", "10")
    assert code == ExitCode.FAILED, err
    assert out.startswith("gradsight: checking simple on synthetic on cpu, sgd lr 10.0, batch 64")
    flat = re.sub(r"[\s│]+", " ", out)  # the table's cells wrap at 80 columns
    assert re.search(r"│ lr_range +│ fail +│", out) and "is past the blow-up point" in flat
    assert "fix: Use an lr near" in flat
    assert "gradsight check: 1 failed (lr_range), " in out
    assert err == ""


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--lr", "-1"], "--lr must be positive"),
        (["--model", "nope"], "unknown model 'nope'"),
        (["--optimizer", "rmsprop"], "invalid choice: 'rmsprop'"),
        (["--device", "tpu"], "unknown device 'tpu'"),
        (["--data", "imagenet"], "imagenet"),
    ],
)
def test_bad_options_exit_2_in_one_line(argv: list[str], message: str) -> None:
    code, out, err = run_cli("check", *FAST, *argv)
    assert code == ExitCode.USAGE and out == ""
    assert message in err and len(err.strip().splitlines()) == 1


def test_an_out_that_is_a_file_exits_2_before_any_work(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for out_dir in (blocker, blocker / "sub"):
        code, out, err = run_cli("check", *FAST, "--out", str(out_dir))
        assert code == ExitCode.USAGE and "is a file, not a folder" in err and out == ""
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


def test_check_into_a_run_folder_adds_the_report_section(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    write_report(run)  # an (empty) run folder's report, before the checks
    assert 'id="checks"' not in (run / "report.html").read_text()
    code, out, _ = run_cli("check", *FAST, "--out", str(run))
    assert code == ExitCode.OK
    assert f"Wrote checks.json, lr_range.png, report.html into {run}" in out
    page = (run / "report.html").read_text()
    assert '<h2 id="checks">' in page and "15 checks, 0 failed." in page
    assert page.count('<tr class="sev-pass">') == 15
    assert base64.b64encode((run / "lr_range.png").read_bytes()).decode() in page


def test_report_section_escapes_and_marks_failures(tmp_path: Path) -> None:
    from gradsight.reports.checks_render import checks_section

    assert checks_section(tmp_path) == ""  # no checks.json: no section
    (tmp_path / "checks.json").write_text(json.dumps({"checks": [
        {"name": "logits", "status": "fail", "value": "<b>", "message": "<script>x</script>",
         "fix": "f"}]}))  # fmt: skip
    section = checks_section(tmp_path)
    assert '<tr class="sev-error"><td>logits</td><td>fail</td><td>&lt;b&gt;</td>' in section
    assert "<script>" not in section and "1 checks, 1 failed." in section
    (tmp_path / "checks.json").write_text("{")
    assert "checks.json could not be read" in checks_section(tmp_path)


def test_run_checks_into_leaves_training_unchanged(tmp_path: Path) -> None:
    config = TrainConfig(dataset="synthetic", device="cpu", batch_size=32)
    prepared = prepare(config)
    before = {k: v.clone() for k, v in prepared.model.state_dict().items()}
    rng = torch.get_rng_state()
    out = io.StringIO()
    report = check_cmd.run_checks_into(tmp_path / "run", prepared, Console(file=out))
    assert report.ok and "gradsight check: 0 failed" in out.getvalue()
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["checks.json", "lr_range.png"]
    after = prepared.model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())
    assert torch.equal(torch.get_rng_state(), rng)
    assert prepared.optimizer.state_dict()["state"] == {}
    assert report["batchnorm_batch"].details == {}  # SimpleCNN has no batch norm
    assert report["lr_range"].details["configured_lr"] == config.lr
    last = check_cmd.check_prepared(prepared)
    assert [c.value for c in last] == [c.value for c in report]  # the same batches each time


def test_train_with_check_trains_exactly_as_without(tmp_path: Path) -> None:
    args = ["train", "--device", "cpu", "--epochs", "1", "--quiet"]
    code, _, err = run_cli(*args, "--check", "--out", str(tmp_path / "checked"))
    assert code == ExitCode.OK, err
    assert (tmp_path / "checked" / "checks.json").is_file()
    assert "Pre-training checks" in (tmp_path / "checked" / "report.html").read_text()
    assert run_cli(*args, "--out", str(tmp_path / "plain"))[0] == ExitCode.OK
    a = torch.load(tmp_path / "checked" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "plain" / "model.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)  # the checks left no trace on training


def test_train_with_a_failing_check_stops_before_training(tmp_path: Path) -> None:
    run = tmp_path / "run"
    code, _, err = run_cli("train", "--device", "cpu", "--quiet", "--check", "--lr", "10",
                           "--out", str(run))  # fmt: skip
    assert code == ExitCode.FAILED
    assert "a pre-training check failed" in err.strip().splitlines()[-1]
    assert (run / "checks.json").is_file() and not (run / "metrics.jsonl").exists()
