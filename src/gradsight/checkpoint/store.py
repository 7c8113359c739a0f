"""A run's checkpoint folder: file names, keeping the last K, and finding the newest valid one."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gradsight.checkpoint.checksum import sidecar_of
from gradsight.checkpoint.io import load_checkpoint, save_checkpoint
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
    """

    directory: Path
    every: int = 0
    keep: int = 3

    def __post_init__(self) -> None:
        if self.every < 0:
            raise CheckpointError(f"--checkpoint-every must be >= 0, got {self.every}; 0 = epochs")
        if self.keep < 1:
            raise CheckpointError(f"--keep-checkpoints must be >= 1, got {self.keep}")


class CheckpointStore:
    """Save numbered checkpoints into a folder and find the newest one that loads."""

    def __init__(self, directory: Path, keep: int = 3) -> None:
        self.directory = Path(directory)
        self.keep = keep

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
        sidecar.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        step = int(payload["step"])
        path = self.directory / f"step-{step:08d}.pt"
        save_checkpoint([path, self.directory / LAST], payload, step)
        for old in self.numbered()[: -self.keep]:
            sidecar_of(old).unlink(missing_ok=True)
            old.unlink(missing_ok=True)
        return path

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
