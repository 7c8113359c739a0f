"""Write the run folder: config, environment, metrics as they come, final weights, summary."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path
from typing import IO, Any

import torch

from gradsight.autograd.attribution import unwrap
from gradsight.env import collect_env
from gradsight.train.events import EpochRecord, Observer, StepRecord, TrainState
from gradsight.train.runfiles import json_safe, write_json

__all__ = ["RunRecorder"]


class RunRecorder(Observer):
    """Record a run into ``run_dir`` as it trains.

    Writes ``config.json`` and ``env.json`` at the start (a resumed run, whose state starts at
    a step > 0, keeps ``env.json`` and appends its own environment to its ``resumes`` list),
    appends one ``metrics.jsonl`` line per step record and per epoch (flushed each time, so
    a crashed run keeps its metrics),
    and at the end ``model.pt`` (the final ``state_dict``) and ``summary.json`` (status,
    steps, final metrics).

    Args:
        run_dir: the run folder; created if missing.
        argv: the command line to record in ``env.json``.
    """

    def __init__(self, run_dir: Path, argv: list[str] | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.argv = list(argv) if argv is not None else []
        self._metrics: IO[str] | None = None
        self._started = 0.0

    def on_train_start(self, state: TrainState) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._started = time.perf_counter()
        state.config.save(self.run_dir / "config.json")
        env = collect_env(state.device, state.config.seed, self.argv)
        env_path = self.run_dir / "env.json"
        if state.step > 0 and env_path.is_file():  # a resume: keep the original record
            first = json.loads(env_path.read_text(encoding="utf-8"))
            env = {**first, "resumes": [*first.get("resumes", []), {**env, "step": state.step}]}
        write_json(env_path, env)
        self._metrics = (self.run_dir / "metrics.jsonl").open("a", encoding="utf-8")

    def _append(self, record: dict[str, Any]) -> None:
        assert self._metrics is not None, "on_train_start was not called"
        self._metrics.write(json.dumps({k: json_safe(v) for k, v in record.items()}) + "\n")
        self._metrics.flush()

    def on_log(self, state: TrainState, record: StepRecord) -> None:
        self._append({**record.to_dict(), **state.extras})
        state.extras.clear()

    def on_epoch_end(self, state: TrainState, record: EpochRecord) -> None:
        self._append(record.to_dict())

    def on_train_end(self, state: TrainState, status: str) -> None:
        if self._metrics is not None:
            self._metrics.close()
            self._metrics = None
        weights = {k: v.detach().to("cpu") for k, v in unwrap(state.model).state_dict().items()}
        bad = [k for k, v in weights.items() if v.is_floating_point() and not v.isfinite().all()]
        if not bad:  # a NaN/Inf weight is never written
            tmp = self.run_dir / "model.pt.tmp"
            torch.save(weights, tmp)
            os.replace(tmp, self.run_dir / "model.pt")  # never a half-written model.pt
        last = state.history[-1].to_dict() if state.history else None
        write_json(
            self.run_dir / "summary.json",
            {
                "status": status,
                "stop_reason": state.stop_reason,
                "epochs_completed": sum(r.complete for r in state.history),
                "steps": state.step,
                "skipped_steps": state.skipped_steps,
                "clipped_steps": state.count_clipped(),
                "skipped_images": state.info.skipped_images,
                "model_pt": "not written: non-finite weights in " + ", ".join(bad)
                if bad
                else "written",
                "final": {k: json_safe(v) for k, v in last.items()} if last else None,
                "seconds": round(time.perf_counter() - self._started, 3),
                "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            },
        )
