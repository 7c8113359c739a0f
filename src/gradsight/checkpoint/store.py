"""A run's checkpoint folder: file names, keeping the last K, and finding the newest valid one.

Checkpoints are written on the calling thread (:meth:`CheckpointStore.save`) or, so that
training does not wait for the disk, on one background writer thread
(:meth:`CheckpointStore.save_in_background`, then :meth:`CheckpointStore.wait`).
"""

from __future__ import annotations

import re
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gradsight.checkpoint.checksum import sidecar_of
from gradsight.checkpoint.io import load_checkpoint, serialize_checkpoint, write_checkpoint
from gradsight.checkpoint.state import Checkpoint
from gradsight.errors import CheckpointError

__all__ = ["LAST", "CheckpointSettings", "CheckpointStore"]

#: The copy of the newest checkpoint, next to the numbered ones.
LAST = "last.pt"
_NAME = re.compile(r"step-(\d{8})\.pt")


@dataclass(frozen=True)
class CheckpointSettings:
    """Where and how often to checkpoint.

    Args:
        directory: the checkpoint folder (default ``<run>/checkpoints``).
        every: also checkpoint every N optimizer steps; 0 checkpoints only at epoch ends.
        keep: how many numbered checkpoints to keep besides ``last.pt``.
        background: write the files on a background thread, so the training thread only
            serializes the checkpoint (the default); False writes them on the training thread.
    """

    directory: Path
    every: int = 0
    keep: int = 3
    background: bool = True

    def __post_init__(self) -> None:
        if self.every < 0:
            raise CheckpointError(f"--checkpoint-every must be >= 0, got {self.every}; 0 = epochs")
        if self.keep < 1:
            raise CheckpointError(f"--keep-checkpoints must be >= 1, got {self.keep}")


class CheckpointStore:
    """Save numbered checkpoints into a folder and find the newest one that loads.

    :meth:`save` writes on the calling thread. :meth:`save_in_background` serializes the
    payload on the calling thread, then hands the bytes to a writer thread
    (``gradsight-checkpoint``) and returns: at most one write is in flight, each save first
    waits for the previous one, and :meth:`wait` waits for it. A write that failed raises
    its :class:`CheckpointError` from the next :meth:`wait`, :meth:`save` or
    :meth:`save_in_background`, on the calling thread. The writer is a daemon thread: call
    :meth:`wait` before the process exits, or the last checkpoint may be lost (never torn).
    """

    def __init__(self, directory: Path, keep: int = 3) -> None:
        self.directory = Path(directory)
        self.keep = keep
        self._writer: threading.Thread | None = None
        self._failure: Exception | None = None  # the writer's error, raised by wait()

    def numbered(self) -> list[Path]:
        """Return the numbered checkpoint files, oldest first."""
        if not self.directory.is_dir():
            return []
        found = [p for p in self.directory.iterdir() if _NAME.fullmatch(p.name)]
        return sorted(found, key=lambda p: p.name)

    def remove_temp_files(self) -> list[Path]:
        """Delete temp files a crash left mid-write; return them."""
        stale = sorted(self.directory.glob(".*.tmp")) if self.directory.is_dir() else []
        for path in stale:
            path.unlink(missing_ok=True)
        return stale

    def save(self, payload: dict[str, Any]) -> Path:
        """Write ``payload`` as ``step-NNNNNNNN.pt`` and ``last.pt``; drop the oldest beyond K.

        Each file gets its ``.sha256`` sidecar; a dropped checkpoint loses its sidecar first,
        so a crash in between leaves a checkpoint that the next save drops, never a stray
        sidecar. Everything is on disk when it returns (a background write in flight is
        waited for first).

        Raises:
            CheckpointError: a file could not be written or an old one removed (the message
                names the checkpoint and the OSError), here or in the previous background
                write.
        """
        path, data, step = self._serialized(payload)
        self._write(path, data, step)
        return path

    def save_in_background(self, payload: dict[str, Any]) -> Path:
        """Serialize ``payload`` now; write it as :meth:`save` does, on the writer thread.

        The payload's tensors are read before this returns, so training may change them
        right after. The returned path is complete on disk once :meth:`wait` returns or the
        next save starts.

        Raises:
            CheckpointError: the previous background write failed (this one is not started).
        """
        path, data, step = self._serialized(payload)
        self._writer = threading.Thread(
            target=self._write_keeping_failure, args=(path, data, step),
            name="gradsight-checkpoint", daemon=True,
        )  # fmt: skip
        self._writer.start()
        return path

    def _serialized(self, payload: dict[str, Any]) -> tuple[Path, bytes, int]:
        """Serialize ``payload`` (while a previous background write may still run), then wait
        for that write; return the checkpoint's path, its bytes and its step."""
        step = int(payload["step"])
        data = serialize_checkpoint(payload)
        self.wait()
        return self.directory / f"step-{step:08d}.pt", data, step

    def wait(self) -> None:
        """Wait for the background write in flight, if any.

        Raises:
            CheckpointError: that write failed; the message names the checkpoint and the
                OSError (raised once: a second call returns).
        """
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.join()
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure

    def _write_keeping_failure(self, path: Path, data: bytes, step: int) -> None:
        try:
            self._write(path, data, step)
        except Exception as exc:  # raised on the training thread by the next wait()
            self._failure = exc

    def _write(self, path: Path, data: bytes, step: int) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            write_checkpoint([path, self.directory / LAST], data, step)
        except OSError as exc:
            raise CheckpointError(f"could not write checkpoint {path}: {_reason(exc)}") from exc
        for old in self.numbered()[: -self.keep]:
            try:
                sidecar_of(old).unlink(missing_ok=True)
                old.unlink(missing_ok=True)
            except OSError as exc:
                msg = f"could not remove old checkpoint {old}: {_reason(exc)}"
                raise CheckpointError(msg) from exc

    def latest_valid(self) -> Checkpoint:
        """Load the newest checkpoint that passes its checks, warning once per bad file.

        Raises:
            CheckpointError: the folder holds no loadable checkpoint.
        """
        candidates = [*reversed(self.numbered()), self.directory / LAST]
        for path in candidates:
            if not path.is_file():
                continue
            try:
                return Checkpoint(path, load_checkpoint(path))
            except CheckpointError as exc:
                warnings.warn(f"{exc}; trying an older checkpoint", stacklevel=2)
        raise CheckpointError(
            f"no valid checkpoint in {self.directory}; train again without --resume"
        )


def _reason(exc: OSError) -> str:
    """``[Errno 28] No space left on device``: the error without the temp file's name."""
    return f"[Errno {exc.errno}] {exc.strerror}" if exc.errno and exc.strerror else str(exc)
