"""Kill ``gradsight train`` with SIGKILL at exact points, resume, and match an unbroken run.

The crash points come from the test-only ``GRADSIGHT_TEST_CRASH_AT`` hook: ``step:N`` dies
right after step N, ``write:N`` halfway through writing step N's checkpoint, ``sidecar:N``
halfway through writing its ``.sha256`` sidecar. 512 synthetic images in batches of 32 make 16
steps an epoch, 32 in all; checkpoints every 3 steps.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from gradsight.checkpoint import load_checkpoint
from gradsight.checkpoint.checksum import sidecar_of
from gradsight.checkpoint.io import CRASH_ENV
from gradsight.cli import ExitCode, main
from gradsight.train.runfiles import read_metrics

ARGS = ["--data", "synthetic", "--epochs", "2", "--batch-size", "32", "--device", "cpu"]
ARGS += ["--log-every", "4", "--checkpoint-every", "3", "--quiet"]


def _crash(crash_at: str, *argv: str) -> None:
    env = {**os.environ, CRASH_ENV: crash_at}
    cmd = [sys.executable, "-m", "gradsight", "train", *argv]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == -9, done.stderr  # SIGKILL, as asked


def _resume(run: Path) -> str:
    err = io.StringIO()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        code = main(["train", "--resume", str(run), "--checkpoint-every", "3", "--quiet"],
                    stdout=io.StringIO(), stderr=err)  # fmt: skip
    assert code == ExitCode.OK, err.getvalue()
    return err.getvalue()


def _comparable(run: Path) -> list[dict[str, object]]:
    return [
        {k: v for k, v in m.items() if k != "seconds"} for m in read_metrics(run / "metrics.jsonl")
    ]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("ref") / "run"
    code = main(["train", *ARGS, "--out", str(run)], stdout=io.StringIO(), stderr=io.StringIO())
    assert code == ExitCode.OK
    return run


def _assert_same_run(run: Path, reference: Path) -> None:
    ours = torch.load(run / "model.pt", weights_only=True)
    theirs = torch.load(reference / "model.pt", weights_only=True)
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)  # bit-identical
    assert _comparable(run) == _comparable(reference)  # no duplicated or missing line
    folder = run / "checkpoints"
    kept = ["last.pt", "step-00000027.pt", "step-00000030.pt", "step-00000032.pt"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [*kept, *(f"{n}.sha256" for n in kept)]
    )
    assert [load_checkpoint(folder / name)["step"] for name in kept] == [32, 27, 30, 32]
    for name in ("last.pt", "step-00000032.pt"):  # plain torch.load, as for any torch file
        plain = torch.load(folder / name, weights_only=True)
        assert plain["step"] == 32 and plain["model"].keys() == ours.keys()
        assert all(torch.equal(plain["model"][k], ours[k]) for k in ours)


@pytest.mark.parametrize("crash_at", ["write:9", "write:16", "sidecar:21"])
def test_crash_during_checkpoint_write_resumes_bit_identical(
    tmp_path: Path, reference: Path, crash_at: str
) -> None:
    run = tmp_path / "run"
    _crash(crash_at, *ARGS, "--out", str(run))
    name = f"step-{int(crash_at.split(':')[1]):08d}.pt"
    left = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert any(n.endswith(".tmp") for n in left)  # it died mid-write
    assert f"{name}.sha256" not in left
    assert (name in left) == crash_at.startswith("sidecar:")  # complete, but unchecked
    err = _resume(run)
    assert (f"{name} has no {name}.sha256 beside it" in err) == (name in left)
    _assert_same_run(run, reference)


def test_repeated_crashes_and_a_corrupt_checkpoint(tmp_path: Path, reference: Path) -> None:
    run = tmp_path / "run"
    _crash("step:5", *ARGS, "--out", str(run))  # between checkpoints: resumes from step 3
    assert [m["step"] for m in read_metrics(run / "metrics.jsonl")] == [4]
    _crash("step:23", "--resume", str(run), "--checkpoint-every", "3", "--quiet")
    newest = run / "checkpoints" / "step-00000021.pt"
    newest.write_bytes(newest.read_bytes()[:-64])  # a disk that lost the tail
    err = _resume(run)
    assert "step-00000021.pt is truncated or corrupted" in err
    assert "dropped 1 line(s) after step 18" in err  # the step-20 line is written again
    _assert_same_run(run, reference)


def _as_010(path: Path) -> None:
    """Rewrite checkpoint ``path`` as gradsight 0.1.0 wrote it: a header line, no sidecar."""
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    path.write_bytes(b"gradsight-checkpoint 1 %d %s\n" % (len(data), digest.encode()) + data)
    sidecar_of(path).unlink()


def test_run_checkpointed_by_010_resumes_bit_identical(tmp_path: Path, reference: Path) -> None:
    run = tmp_path / "run"
    _crash("step:23", *ARGS, "--out", str(run))
    old = sorted((run / "checkpoints").glob("*.pt"))
    assert [p.name for p in old] == [
        "last.pt",
        "step-00000016.pt",
        "step-00000018.pt",
        "step-00000021.pt",
    ]
    for path in old:
        _as_010(path)
    with pytest.raises(pickle.UnpicklingError):  # the header line: no torch file any more
        torch.load(old[0], weights_only=True)
    err = _resume(run)
    assert "trying an older" not in err  # the newest, step-00000021.pt, loads as it is
    _assert_same_run(run, reference)  # the 0.1.0 files are pruned or replaced


def test_resumed_run_neither_repeats_nor_forgets_monitor_findings(tmp_path: Path) -> None:
    path = tmp_path / "detached.py"
    path.write_text(
        "from torch import nn\n"
        "class Detached(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.conv = nn.Conv2d(1, 4, 3, padding=1)\n"
        "        self.fc = nn.Linear(4 * 16 * 16, 10)\n"
        "    def forward(self, x):\n"
        "        return self.fc(self.conv(x).detach().flatten(1))\n"
    )
    args = [*ARGS, "--model", f"{path}:Detached"]
    reference = tmp_path / "reference"
    assert main(["train", *args, "--out", str(reference)],
                stdout=io.StringIO(), stderr=io.StringIO()) == ExitCode.OK  # fmt: skip
    run = tmp_path / "run"
    _crash("step:20", *args, "--out", str(run))
    _resume(run)
    events = (run / "events.jsonl").read_text().splitlines()
    assert events == (reference / "events.jsonl").read_text().splitlines()
    assert sum('"no_grad"' in line for line in events) == 1  # conv.weight and conv.bias, once
