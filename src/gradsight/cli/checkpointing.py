"""The checkpoint side of ``gradsight train``: its options' settings, and ``--resume``."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from gradsight.checkpoint import (
    LOG_FILES,
    Checkpoint,
    CheckpointSettings,
    find_checkpoint,
    truncate_log,
)
from gradsight.config import TrainConfig
from gradsight.train import Prepared
from gradsight.train.progress import ResumePoint

__all__ = ["Resumed", "checkpoint_settings", "find_resume"]


def checkpoint_settings(
    config: TrainConfig, directory: Path | None, run_dir: Path
) -> CheckpointSettings:
    """Return the checkpoint settings of ``config`` (default folder ``<run>/checkpoints``)."""
    return CheckpointSettings(
        directory=directory or run_dir / "checkpoints",
        every=config.checkpoint_every,
        keep=config.keep_checkpoints,
    )


@dataclass(frozen=True)
class Resumed:
    """The run folder and checkpoint a ``--resume`` continues."""

    run_dir: Path
    checkpoint: Checkpoint

    @property
    def config(self) -> TrainConfig:
        return self.checkpoint.config

    def restore(self, prepared: Prepared, err: Console) -> ResumePoint:
        """Load the checkpoint into ``prepared`` and cut the run's logs back to its step."""
        point = self.checkpoint.restore(prepared)
        for name in LOG_FILES:
            dropped = truncate_log(self.run_dir / name, point.step)
            if dropped:
                err.print(
                    f"gradsight: {name}: dropped {dropped} line(s) after step {point.step}",
                    markup=False,
                )
        return point


def find_resume(args: argparse.Namespace, out: Console) -> Resumed:
    """Locate the checkpoint ``--resume`` names and say which one is used."""
    run_dir, checkpoint = find_checkpoint(args.resume, args.checkpoint_dir)
    p = checkpoint.payload
    out.print(
        f"gradsight: resuming {run_dir} from {checkpoint.path.name}: step {checkpoint.step}, "
        f"epoch {p['epoch']} after batch {p['batch_index']}",
        highlight=False,
    )
    return Resumed(run_dir, checkpoint)
