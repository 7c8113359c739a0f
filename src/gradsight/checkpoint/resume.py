"""Find the checkpoint a ``--resume`` names, and cut a run's logs back to that checkpoint."""

from __future__ import annotations

import json
import os
from pathlib import Path

from gradsight.checkpoint.io import load_checkpoint
from gradsight.checkpoint.state import Checkpoint
from gradsight.checkpoint.store import CheckpointStore
from gradsight.errors import CheckpointError

__all__ = ["LOG_FILES", "find_checkpoint", "truncate_log"]

#: The run folder's line logs that a resume cuts back to the checkpoint's step.
LOG_FILES = ("metrics.jsonl", "events.jsonl")


def find_checkpoint(target: Path, checkpoint_dir: Path | None = None) -> tuple[Path, Checkpoint]:
    """Return (run folder, checkpoint) for ``--resume target``.

    ``target`` is a run folder (its newest valid checkpoint is used; a bad one is warned about
    and skipped) or one checkpoint file (used as is, its run folder read from it).

    Raises:
        CheckpointError: nothing at ``target``, or no loadable checkpoint there.
    """
    target = Path(target)
    if target.is_file():
        checkpoint = Checkpoint(target, load_checkpoint(target))
        return Path(checkpoint.payload.get("run_dir") or target.parent.parent), checkpoint
    if not target.is_dir():
        raise CheckpointError(f"--resume {target}: no such run folder or checkpoint file")
    store = CheckpointStore(checkpoint_dir or target / "checkpoints")
    return target, store.latest_valid()


def _keep(line: str, step: int) -> bool:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return False  # a line cut short by the crash
    line_step = record.get("step") if isinstance(record, dict) else None
    return not isinstance(line_step, int) or line_step <= step


def truncate_log(path: Path, step: int) -> int:
    """Drop the lines of the JSON-lines file ``path`` recorded after ``step``; return how many.

    Lines without an integer ``step`` are kept; a torn last line is dropped. The file is
    rewritten atomically. A missing file is left missing.
    """
    if not path.is_file():
        return 0
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [ln for ln in lines if ln.strip() and ln.endswith("\n") and _keep(ln, step)]
    if len(kept) == len([ln for ln in lines if ln.strip()]):
        return 0
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(kept), encoding="utf-8")
    os.replace(tmp, path)
    return len(lines) - len(kept)
