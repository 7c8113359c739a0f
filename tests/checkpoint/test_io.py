"""Checkpoint files: round trip, atomic writes, and refusal of corrupt or unsafe files."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import pytest
import torch

from gradsight.checkpoint import CheckpointStore, load_checkpoint, save_checkpoint
from gradsight.checkpoint.io import pack
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


def _evil_bytes(marker: Path) -> bytes:
    buffer = io.BytesIO()
    torch.save({"format": 1, "step": 1, "x": _Evil(marker)}, buffer)
    return buffer.getvalue()


def test_round_trip_keeps_values_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "a.pt"
    save_checkpoint([path], _payload(), step=3)
    loaded = load_checkpoint(path)
    assert torch.equal(loaded["w"], torch.arange(6.0).view(2, 3))
    assert loaded["t"] == (1, "a", None) and loaded["step"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]


def test_pickle_that_runs_code_is_refused_and_does_not_run(tmp_path: Path) -> None:
    blob = _evil_bytes(tmp_path / "ran-unsafe")
    torch.load(io.BytesIO(blob), weights_only=False)  # the payload really is dangerous...
    assert (tmp_path / "ran-unsafe").exists()
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pt"
    path.write_bytes(pack(_evil_bytes(marker)))  # valid header and SHA-256
    with pytest.raises(CheckpointError, match="needs arbitrary unpickling") as exc:
        load_checkpoint(path)
    assert "\n" not in str(exc.value)
    assert not marker.exists()  # ...but load_checkpoint never ran it


def test_plain_torch_file_without_header_is_refused_unread(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "plain.pt"
    path.write_bytes(_evil_bytes(marker))
    with pytest.raises(CheckpointError, match="not a gradsight checkpoint"):
        load_checkpoint(path)
    assert not marker.exists()


def test_truncated_and_corrupted_files_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "a.pt"
    save_checkpoint([path], _payload(), step=3)
    data = path.read_bytes()
    path.write_bytes(data[:-10])
    with pytest.raises(CheckpointError, match=r"truncated or corrupted: \d+ bytes, header says"):
        load_checkpoint(path)
    flipped = bytearray(data)
    flipped[-5] ^= 0xFF
    path.write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="SHA-256 does not match"):
        load_checkpoint(path)


def test_store_keeps_last_k_and_falls_back_past_a_corrupt_file(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, keep=2)
    for step in (3, 6, 9):
        store.save(_payload(step))
    assert [p.name for p in store.numbered()] == ["step-00000006.pt", "step-00000009.pt"]
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 9
    newest = tmp_path / "step-00000009.pt"
    newest.write_bytes(newest.read_bytes()[:100])
    (tmp_path / "last.pt").write_bytes(b"junk")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert store.latest_valid().step == 6
    assert [str(w.message).count("\n") for w in caught] == [0]  # last.pt never needed
    assert "step-00000009.pt is truncated" in str(caught[0].message)


def test_store_with_nothing_valid_says_so(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no valid checkpoint in"):
        CheckpointStore(tmp_path).latest_valid()


@pytest.mark.parametrize(
    ("every", "keep", "flag"), [(-1, 3, "--checkpoint-every"), (0, 0, "--keep")]
)
def test_settings_reject_bad_values(every: int, keep: int, flag: str) -> None:
    with pytest.raises(CheckpointError, match=flag):
        CheckpointSettings(Path("x"), every=every, keep=keep)
