"""The size and SHA-256 checks: the sidecar's exact layout, and the 0.1.0 header line."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from gradsight.checkpoint.checksum import checked_payload, sidecar, sidecar_of
from gradsight.errors import CheckpointError

HELLO_SHA = hashlib.sha256(b"hello").hexdigest()


def test_sidecar_sits_beside_its_checkpoint() -> None:
    assert sidecar_of(Path("run/ck/step-00000020.pt")) == Path("run/ck/step-00000020.pt.sha256")


def test_sidecar_layout_is_exact_and_sha256sum_checks_it(tmp_path: Path) -> None:
    text = sidecar("a.pt", b"hello")
    assert text == f"# gradsight-checkpoint 2 5\n{HELLO_SHA}  a.pt\n".encode()
    if shutil.which("sha256sum") is None:
        pytest.skip("no sha256sum on this machine")
    (tmp_path / "a.pt").write_bytes(b"hello")
    (tmp_path / "a.pt.sha256").write_bytes(text)
    done = subprocess.run(
        ["sha256sum", "--check", "--strict", "a.pt.sha256"],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (0, "a.pt: OK\n")


def test_checked_payload_reads_a_sidecar_and_a_010_header(tmp_path: Path) -> None:
    path = tmp_path / "a.pt"
    path.with_name("a.pt.sha256").write_bytes(sidecar("a.pt", b"hello"))
    assert checked_payload(path, b"hello") == b"hello"
    legacy = b"gradsight-checkpoint 1 5 %s\nhello" % HELLO_SHA.encode()
    assert checked_payload(tmp_path / "old.pt", legacy) == b"hello"  # no sidecar needed


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"hell", r"old.pt is truncated or corrupted: 4 bytes, its header says 5"),
        (b"jello", r"old.pt is corrupted: its SHA-256 does not match its header"),
    ],
)
def test_010_payload_that_does_not_match_its_header_is_refused(blob: bytes, message: str) -> None:
    legacy = b"gradsight-checkpoint 1 5 %s\n" % HELLO_SHA.encode() + blob
    with pytest.raises(CheckpointError, match=message):
        checked_payload(Path("old.pt"), legacy)


@pytest.mark.parametrize(
    "header",
    [
        b"gradsight-checkpoint 1 5\n",
        b"gradsight-checkpoint 7 5 ab\n",
        b"gradsight-checkpoint1 5 ab\n",
    ],
)
def test_damaged_010_header_is_refused(header: bytes) -> None:
    with pytest.raises(CheckpointError, match=r"old.pt has a damaged 'gradsight-checkpoint 1'"):
        checked_payload(Path("old.pt"), header + b"hello")


@pytest.mark.parametrize(
    "text",
    [
        f"{HELLO_SHA}  a.pt\n".encode(),  # a bare sha256sum line: no size
        f"# gradsight-checkpoint 2 5\n{HELLO_SHA[:-1]}  a.pt\n".encode(),
        b"",
    ],
)
def test_malformed_sidecar_is_refused(tmp_path: Path, text: bytes) -> None:
    (tmp_path / "a.pt.sha256").write_bytes(text)
    with pytest.raises(CheckpointError, match=r"a.pt.sha256 is not a gradsight checksum file"):
        checked_payload(tmp_path / "a.pt", b"hello")


def test_missing_sidecar_is_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError) as exc:
        checked_payload(tmp_path / "a.pt", b"hello")
    message = str(exc.value)
    assert message.startswith(f"{tmp_path / 'a.pt'} has no a.pt.sha256 beside it")
    assert "copy the .sha256 file along with it" in message and "\n" not in message


def test_a_sidecar_passed_as_the_checkpoint_names_the_checkpoint() -> None:
    with pytest.raises(CheckpointError, match=r"pass the checkpoint itself, step-00000020.pt$"):
        checked_payload(Path("ck/step-00000020.pt.sha256"), b"")
