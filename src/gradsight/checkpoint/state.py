"""Turn the live training state into a checkpoint payload, and a payload back into a resume."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from gradsight.autograd.attribution import unwrap
from gradsight.config import TrainConfig
from gradsight.errors import CheckpointError
from gradsight.rng import capture_rng
from gradsight.train.distributed import world_size
from gradsight.train.events import EpochRecord, TrainState
from gradsight.train.progress import MetricWindow, ResumePoint
from gradsight.train.setup import Prepared

__all__ = ["Checkpoint", "Stateful", "capture"]

FORMAT = 1


class Stateful(Protocol):
    """An observer whose own state a checkpoint keeps (e.g. the gradient monitor's)."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def capture(
    state: TrainState,
    *,
    epoch: int,
    batch_index: int,
    data_order_state: torch.Tensor,
    window: MetricWindow,
    run_dir: Path,
    observers: Mapping[str, Stateful] | None = None,
) -> dict[str, Any]:
    """Return the payload that resumes ``state`` at batch ``batch_index`` of ``epoch``.

    Args:
        epoch: the 1-based epoch a resume continues.
        batch_index: the batches of ``epoch`` already done.
        data_order_state: the data generator's state at the start of ``epoch``.
        window: the running metrics of ``epoch`` so far.
        run_dir: the run folder, recorded so a checkpoint file alone finds its run.
        observers: observers whose ``state_dict()`` is saved too, by name.
    """
    return {
        "format": FORMAT,
        "world_size": world_size(),
        "config": state.config.to_dict(),
        "model": {k: v.detach().to("cpu") for k, v in unwrap(state.model).state_dict().items()},
        "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict() if state.scheduler is not None else None,
        "scaler": state.scaler.state_dict() if state.scaler is not None else None,
        "epoch": epoch,
        "batch_index": batch_index,
        "step": state.step,
        "skipped_steps": state.skipped_steps,
        "clipped_steps": state.count_clipped(),
        "history": [r.to_dict() for r in state.history],
        "data_order_state": data_order_state.clone(),
        "window": window.to_dict(),
        "rng": capture_rng(),
        "run_dir": str(run_dir),
        "observers": {name: o.state_dict() for name, o in (observers or {}).items()},
    }


def _record(data: dict[str, Any]) -> EpochRecord:
    return EpochRecord(**{k: v for k, v in data.items() if k != "kind"})


@dataclass(frozen=True)
class Checkpoint:
    """A loaded, checked checkpoint and the file it came from."""

    path: Path
    payload: dict[str, Any]

    @property
    def step(self) -> int:
        return int(self.payload["step"])

    @property
    def config(self) -> TrainConfig:
        """Return the run's config, as saved in the checkpoint."""
        try:
            return TrainConfig.from_dict(self.payload["config"])
        except (KeyError, TypeError) as exc:
            raise CheckpointError(f"{self.path} has no valid config ({exc})") from None

    def observer_state(self, name: str) -> dict[str, Any] | None:
        """The saved state of observer ``name``; None in checkpoints from before it was saved."""
        state = self.payload.get("observers", {}).get(name)
        return state if isinstance(state, dict) else None

    def restore(self, prepared: Prepared) -> ResumePoint:
        """Load the weights and optimizer state into ``prepared``; return where to resume."""
        p = self.payload
        saved, now = int(p.get("world_size", 1)), world_size()
        if saved != now:
            raise CheckpointError(
                f"{self.path} was saved by a run on {saved} process(es), this one has {now}: "
                f"resume with the same world size (torchrun --nnodes x --nproc_per_node = {saved})"
            )
        unwrap(prepared.model).load_state_dict(p["model"])
        prepared.optimizer.load_state_dict(p["optimizer"])
        if prepared.scheduler is not None and p.get("scheduler") is not None:
            prepared.scheduler.load_state_dict(p["scheduler"])
        return ResumePoint(
            epoch=int(p["epoch"]),
            batch_index=int(p["batch_index"]),
            step=int(p["step"]),
            skipped_steps=int(p["skipped_steps"]),
            history=tuple(_record(r) for r in p["history"]),
            data_order_state=p["data_order_state"],
            window=MetricWindow.from_dict(p["window"], prepared.device),
            rng=p["rng"],
            scaler=p.get("scaler"),
            clipped_steps=int(p.get("clipped_steps", 0)),
        )
