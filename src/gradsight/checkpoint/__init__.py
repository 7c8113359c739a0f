"""Crash-safe checkpoints, bit-exact resume, and the checks that make loading them safe."""

from gradsight.checkpoint.io import load_checkpoint, save_checkpoint
from gradsight.checkpoint.observer import CheckpointObserver
from gradsight.checkpoint.resume import LOG_FILES, find_checkpoint, truncate_log
from gradsight.checkpoint.state import Checkpoint, Stateful, capture
from gradsight.checkpoint.store import LAST, CheckpointSettings, CheckpointStore

__all__ = [
    "LAST",
    "LOG_FILES",
    "Checkpoint",
    "CheckpointObserver",
    "CheckpointSettings",
    "CheckpointStore",
    "Stateful",
    "capture",
    "find_checkpoint",
    "load_checkpoint",
    "save_checkpoint",
    "truncate_log",
]
