"""Read and write checkpoint files: a checksummed header, then a ``torch.save`` payload.

A checkpoint file is one header line ``gradsight-checkpoint 1 <size> <sha256>\\n`` followed
by ``size`` bytes written by ``torch.save``. The size and SHA-256 are checked before anything
is unpickled, and the payload is loaded with ``torch.load(..., weights_only=True)`` only, so a
file that would run code when unpickled is refused without running it.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import signal
from pathlib import Path
from typing import Any

import torch

from gradsight.errors import CheckpointError

__all__ = ["CRASH_ENV", "MAGIC", "atomic_write", "load_checkpoint", "pack", "save_checkpoint"]

MAGIC = b"gradsight-checkpoint"
_VERSION = 1
_HEADER_MAX = 200

#: Test-only crash hook. ``write:<step>`` kills the process (SIGKILL) halfway through writing
#: the checkpoint of that step; ``step:<step>`` kills it right after that optimizer step. The
#: crash tests use it to interrupt a run at exact points; never set it otherwise.
CRASH_ENV = "GRADSIGHT_TEST_CRASH_AT"


def crash_if_requested(point: str) -> None:
    """SIGKILL this process when :data:`CRASH_ENV` equals ``point`` (test-only)."""
    if os.environ.get(CRASH_ENV) == point:
        os.kill(os.getpid(), signal.SIGKILL)


def pack(payload: bytes) -> bytes:
    """Return ``payload`` behind the checksummed header line."""
    digest = hashlib.sha256(payload).hexdigest()
    return b"%s %d %d %s\n" % (MAGIC, _VERSION, len(payload), digest.encode()) + payload


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some filesystems cannot fsync a directory; the rename is still atomic
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, crash_point: str | None = None) -> None:
    """Write ``data`` to ``path`` so that a crash leaves the old file or the new, never half.

    Writes a temp file in the same folder, flushes and fsyncs it, renames it over ``path``
    with ``os.replace`` and fsyncs the folder.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as f:
        half = len(data) // 2
        f.write(data[:half])
        if crash_point is not None:
            f.flush()
            crash_if_requested(crash_point)
        f.write(data[half:])
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def save_checkpoint(paths: list[Path], payload: dict[str, Any], step: int) -> None:
    """Serialize ``payload`` once and write it atomically to each of ``paths``."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = pack(buffer.getvalue())
    for path in paths:
        atomic_write(path, data, crash_point=f"write:{step}")


def _unpack(path: Path, blob: bytes) -> bytes:
    header, _, payload = blob.partition(b"\n")
    fields = header[:_HEADER_MAX].split(b" ")
    if len(fields) != 4 or fields[0] != MAGIC:
        raise CheckpointError(
            f"{path} is not a gradsight checkpoint (no '{MAGIC.decode()}' header); "
            "pass a file from a run's checkpoints/ folder"
        )
    size, digest = (
        int(fields[2]) if fields[2].isdigit() else -1,
        fields[3].decode("ascii", "replace"),
    )
    if len(payload) != size:
        raise CheckpointError(
            f"{path} is truncated or corrupted: {len(payload)} bytes, header says {size}"
        )
    if hashlib.sha256(payload).hexdigest() != digest:
        raise CheckpointError(f"{path} is corrupted: its SHA-256 does not match its header")
    return payload


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Check and load the checkpoint at ``path`` with ``torch.load(weights_only=True)``.

    Raises:
        CheckpointError: the file is missing, not a checkpoint, truncated, corrupted, or its
            payload needs arbitrary unpickling (refused without running it).
    """
    try:
        blob = Path(path).read_bytes()
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror}") from None
    payload = _unpack(path, blob)
    try:
        data = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if "nsupported" in ln]
        reason = lines[0] if lines else "an object weights_only does not allow"
        raise CheckpointError(
            f"refusing to load {path}: it needs arbitrary unpickling ({reason[:120]}); "
            "only checkpoints written by gradsight load, with weights_only=True"
        ) from None
    except (RuntimeError, EOFError, ValueError) as exc:
        raise CheckpointError(f"{path} is corrupted: torch.load failed ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != _VERSION:
        raise CheckpointError(f"{path} holds no gradsight checkpoint format {_VERSION} payload")
    return data
