"""Checkpoint files: round trip, plain ``torch.load``, 0.1.0 files, refusing bad or unsafe ones."""

from __future__ import annotations

import hashlib
import io
import struct
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from gradsight.checkpoint import CheckpointStore, load_checkpoint, save_checkpoint
from gradsight.checkpoint.checksum import sidecar, sidecar_of
from gradsight.checkpoint.store import CheckpointSettings
from gradsight.errors import CheckpointError


class _Evil:
    """Unpickling this creates ``marker``: the code a checkpoint must never get to run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return open, (str(self.marker), "w")


def _payload(step: int = 3) -> dict[str, object]:
    return {"format": 1, "step": step, "w": torch.arange(6.0).view(2, 3), "t": (1, "a", None)}


def _saved(payload: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def _evil_bytes(marker: Path) -> bytes:
    return _saved({"format": 1, "step": 1, "x": _Evil(marker)})


def _as_010(data: bytes) -> bytes:
    """``data`` as gradsight 0.1.0 wrote it: its size and SHA-256 in a header line before it."""
    digest = hashlib.sha256(data).hexdigest()
    return b"gradsight-checkpoint 1 %d %s\n" % (len(data), digest.encode()) + data


def _write_with_sidecar(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    sidecar_of(path).write_bytes(sidecar(path.name, data))


def test_round_trip_loads_with_plain_torch_load_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "a.pt"
    save_checkpoint([path], _payload(), step=3)
    for loaded in (load_checkpoint(path), torch.load(path, weights_only=True)):
        assert torch.equal(loaded["w"], torch.arange(6.0).view(2, 3))
        assert loaded["t"] == (1, "a", None) and loaded["step"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt", "a.pt.sha256"]
    data = path.read_bytes()
    assert data.startswith(b"PK\x03\x04")  # torch.save's zip, no header in front
    assert (tmp_path / "a.pt.sha256").read_bytes() == sidecar("a.pt", data)


@pytest.mark.parametrize("container", ["sidecar", "0.1.0 header"])
def test_pickle_that_runs_code_is_refused_and_does_not_run(tmp_path: Path, container: str) -> None:
    torch.load(io.BytesIO(_evil_bytes(tmp_path / "ran-unsafe")), weights_only=False)
    assert (tmp_path / "ran-unsafe").exists()  # the payload really is dangerous...
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pt"
    if container == "sidecar":
        _write_with_sidecar(path, _evil_bytes(marker))  # a valid size and SHA-256
    else:
        path.write_bytes(_as_010(_evil_bytes(marker)))
    with pytest.raises(CheckpointError, match="needs arbitrary unpickling") as exc:
        load_checkpoint(path)
    assert "\n" not in str(exc.value)
    assert not marker.exists()  # ...but load_checkpoint never ran it


def test_torch_file_without_sidecar_is_refused_unread(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "plain.pt"
    path.write_bytes(_evil_bytes(marker))
    with pytest.raises(CheckpointError, match=r"plain.pt has no plain.pt.sha256 beside it"):
        load_checkpoint(path)
    assert not marker.exists()


def test_truncated_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "a.pt"
    save_checkpoint([path], _payload(), step=3)
    size = path.stat().st_size
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(
        CheckpointError,
        match=rf"truncated or corrupted: {size - 10} bytes, a.pt.sha256 says {size}",
    ):
        load_checkpoint(path)


def test_flipped_bit_in_a_weight_is_caught_by_the_digest_alone(tmp_path: Path) -> None:
    path = tmp_path / "a.pt"
    save_checkpoint([path], {"format": 1, "step": 3, "w": torch.full((64,), 7.0)}, step=3)
    data = bytearray(path.read_bytes())
    data[data.find(struct.pack("<f", 7.0) * 64) + 10] ^= 0x01  # one bit of w[2]
    path.write_bytes(bytes(data))
    assert torch.load(path, weights_only=True)["w"][2] == 7.03125  # torch.load takes it
    with pytest.raises(CheckpointError, match=r"a.pt is corrupted: its SHA-256 does not match"):
        load_checkpoint(path)


def test_010_file_loads_without_sidecar(tmp_path: Path) -> None:
    path = tmp_path / "old.pt"
    path.write_bytes(_as_010(_saved(_payload(7))))
    loaded = load_checkpoint(path)
    assert loaded["step"] == 7 and torch.equal(loaded["w"], torch.arange(6.0).view(2, 3))
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(CheckpointError, match=r"old.pt is truncated or corrupted: .* its header"):
        load_checkpoint(path)


def test_store_keeps_last_k_with_their_sidecars_and_all_load_with_torch_load(
    tmp_path: Path,
) -> None:
    store = CheckpointStore(tmp_path, keep=2)
    for step in (3, 6, 9):
        store.save(_payload(step))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "last.pt", "last.pt.sha256",
        "step-00000006.pt", "step-00000006.pt.sha256",
        "step-00000009.pt", "step-00000009.pt.sha256",
    ]  # fmt: skip
    assert [p.name for p in store.numbered()] == ["step-00000006.pt", "step-00000009.pt"]
    for name, step in [("last.pt", 9), ("step-00000006.pt", 6), ("step-00000009.pt", 9)]:
        assert torch.load(tmp_path / name, weights_only=True)["step"] == step
        assert load_checkpoint(tmp_path / name)["step"] == step


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:100])


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _vouch_for_other_bytes(path: Path) -> None:
    size = path.stat().st_size
    sidecar_of(path).write_bytes(sidecar(path.name, b"\0" * size))  # right size, wrong digest


def _drop_sidecar(path: Path) -> None:
    sidecar_of(path).unlink()  # as a crash between the two writes leaves it


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_truncate, "step-00000009.pt is truncated or corrupted: 100 bytes, "),
        (_flip_a_byte, "step-00000009.pt is corrupted: its SHA-256 does not match "),
        (_vouch_for_other_bytes, "its SHA-256 does not match step-00000009.pt.sha256"),
        (_drop_sidecar, "step-00000009.pt has no step-00000009.pt.sha256 beside it"),
    ],
)
def test_store_falls_back_past_a_checkpoint_that_fails_its_check(
    tmp_path: Path, damage: Callable[[Path], None], message: str
) -> None:
    store = CheckpointStore(tmp_path, keep=2)
    for step in (3, 6, 9):
        store.save(_payload(step))
    damage(tmp_path / "step-00000009.pt")
    (tmp_path / "last.pt").write_bytes(b"junk")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert store.latest_valid().step == 6
    assert [str(w.message).count("\n") for w in caught] == [0]  # last.pt never needed
    assert message in str(caught[0].message)
    assert str(caught[0].message).endswith("; trying an older checkpoint")


def test_store_resumes_from_010_files_and_prunes_them(tmp_path: Path) -> None:
    for step in (3, 6):
        (tmp_path / f"step-{step:08d}.pt").write_bytes(_as_010(_saved(_payload(step))))
    store = CheckpointStore(tmp_path, keep=2)
    assert store.latest_valid().step == 6
    store.save(_payload(9))
    assert load_checkpoint(tmp_path / "step-00000006.pt")["step"] == 6  # kept, still 0.1.0
    store.save(_payload(12))
    assert sorted(p.name for p in tmp_path.glob("step-*")) == [
        "step-00000009.pt", "step-00000009.pt.sha256",
        "step-00000012.pt", "step-00000012.pt.sha256",
    ]  # fmt: skip


def test_store_with_nothing_valid_says_so(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no valid checkpoint in"):
        CheckpointStore(tmp_path).latest_valid()


@pytest.mark.parametrize(
    ("every", "keep", "flag"), [(-1, 3, "--checkpoint-every"), (0, 0, "--keep")]
)
def test_settings_reject_bad_values(every: int, keep: int, flag: str) -> None:
    with pytest.raises(CheckpointError, match=flag):
        CheckpointSettings(Path("x"), every=every, keep=keep)
