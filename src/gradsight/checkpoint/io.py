"""Read and write checkpoint files: a plain ``torch.save`` file, and a sidecar that checks it.

A checkpoint ``step-00000020.pt`` holds exactly what ``torch.save`` writes for the checkpoint
dict, so ``torch.load(path, weights_only=True)`` returns it. Its sidecar
``step-00000020.pt.sha256`` holds the file's size and SHA-256 (see
:mod:`gradsight.checkpoint.checksum`); it is written after the checkpoint, both atomically,
so a crash between the two leaves a checkpoint without its check, which is refused like a
corrupt one. :func:`load_checkpoint` checks size and SHA-256 before anything is unpickled,
then loads with ``torch.load(..., weights_only=True)`` only, so a file that would run code
when unpickled is refused without running it. Files from gradsight 0.1.0 (a header line
``gradsight-checkpoint 1 <size> <sha256>`` before the payload, no sidecar) still load.

Saving is two halves: :func:`serialize_checkpoint` (``torch.save`` into bytes; it reads the
live tensors, so it runs on the training thread) and :func:`write_checkpoint` (the atomic
writes of those bytes, which :class:`~gradsight.checkpoint.store.CheckpointStore` may run
on its background writer thread). :func:`save_checkpoint` does both, synchronously.
"""

from __future__ import annotations

import io
import os
import pickle
import signal
from pathlib import Path
from typing import Any

import torch

from gradsight.checkpoint.checksum import checked_payload, sidecar, sidecar_of
from gradsight.checkpoint.state import FORMAT
from gradsight.errors import CheckpointError

__all__ = [
    "CRASH_ENV",
    "atomic_write",
    "load_checkpoint",
    "save_checkpoint",
    "serialize_checkpoint",
    "write_checkpoint",
]

#: Test-only crash hook. ``write:<step>`` kills the process (SIGKILL) halfway through writing
#: the checkpoint of that step, ``sidecar:<step>`` halfway through writing its sidecar (the
#: checkpoint itself is complete), both from the thread that writes it; ``step:<step>`` dies
#: right after that optimizer step, once the checkpoint writes in flight are done (the
#: observer reads it once, at train start). The crash tests use it to interrupt a run at
#: exact points; never set it otherwise.
CRASH_ENV = "GRADSIGHT_TEST_CRASH_AT"


def crash_if_requested(point: str) -> None:
    """SIGKILL this process when :data:`CRASH_ENV` equals ``point`` (test-only).

    ``write:N`` and ``sidecar:N`` are checked here as each file is written. For ``step:N``
    the :class:`~gradsight.checkpoint.observer.CheckpointObserver` reads the variable once
    (:func:`requested_crash_step`) and calls this right after step N, once the checkpoint
    writes in flight are done, so the checkpoints taken before step N are on disk.
    """
    if os.environ.get(CRASH_ENV) == point:
        os.kill(os.getpid(), signal.SIGKILL)


def requested_crash_step() -> int | None:
    """The step N of a ``step:N`` :data:`CRASH_ENV` (test-only); None when none is set."""
    kind, _, step = os.environ.get(CRASH_ENV, "").partition(":")
    return int(step) if kind == "step" and step.isdigit() else None


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


def serialize_checkpoint(payload: dict[str, Any]) -> bytes:
    """Return the bytes ``torch.save`` writes for ``payload``.

    Call it where the payload's tensors cannot change meanwhile (the training thread): the
    bytes are a snapshot, safe to hand to another thread.
    """
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def write_checkpoint(paths: list[Path], data: bytes, step: int) -> None:
    """Write the serialized checkpoint ``data`` atomically to each of ``paths``, then its sidecar.

    Each checkpoint is complete on disk before its sidecar is written, so a sidecar never
    vouches for bytes that are not there. Safe to run on a thread other than the one that
    serialized ``data``; ``step`` only names the crash points of :data:`CRASH_ENV`.
    """
    for path in paths:
        atomic_write(path, data, crash_point=f"write:{step}")
        atomic_write(sidecar_of(path), sidecar(path.name, data), crash_point=f"sidecar:{step}")


def save_checkpoint(paths: list[Path], payload: dict[str, Any], step: int) -> None:
    """Serialize ``payload`` once and write it atomically to each of ``paths``, then its sidecar.

    :func:`serialize_checkpoint` then :func:`write_checkpoint`, on the calling thread.
    """
    write_checkpoint(paths, serialize_checkpoint(payload), step)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Check and load the checkpoint at ``path`` with ``torch.load(weights_only=True)``.

    ``path`` is checked against its sidecar (or, for a 0.1.0 file, its header line) first.

    Raises:
        CheckpointError: the file is missing, its sidecar is missing or does not match, it is
            truncated or corrupted, or its payload needs arbitrary unpickling (refused without
            running it).
    """
    path = Path(path)
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror}") from None
    payload = checked_payload(path, blob)
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
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path} holds no gradsight checkpoint format {FORMAT} payload")
    return data
