"""``gradsight.watch``: the gradient monitor and the run folder, in the user's own loop.

The loop stays the user's: ``run.check(step, batch)`` after ``loss.backward()`` (True: skip
this update), ``run.log(step, loss=...)`` when they want a metrics line. With a ``run_dir``,
the same folder as ``gradsight train`` is written: ``env.json``, ``config.json`` (the
monitor's settings), ``metrics.jsonl``, ``events.jsonl``, the first step's graph and trace
(``graph.json``, ``graph.svg``, ``trace.json``), and on exit, normal or not,
``summary.json``, the plots and ``report.html``.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import torch
from torch import nn

from gradsight.autograd.attribution import ModuleAttribution, unwrap
from gradsight.autograd.trace import trace_backward
from gradsight.env import collect_env
from gradsight.health.birthplace import LossFn, replaying
from gradsight.health.findings import EventLog, Finding, Findings
from gradsight.health.monitor import GradMonitor, MonitorConfig
from gradsight.health.scaler import Scaler
from gradsight.reports.graph_files import write_first_step
from gradsight.reports.html import write_run_reports
from gradsight.train.distributed import current_ranks
from gradsight.train.loop import one_line
from gradsight.train.runfiles import json_safe, write_json

__all__ = ["WatchedRun", "watch"]


class WatchedRun:
    """A training run in the user's own loop: the monitor, and the run folder if asked.

    Made by :func:`watch`; use it as a context manager so the folder is finished whatever
    happens (an exception is recorded as ``failed`` and re-raised; Ctrl-C as
    ``interrupted``).
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn | None,
        run_dir: Path | None,
        config: MonitorConfig,
        on_finding: Callable[[Finding], object] | None,
    ) -> None:
        self.model = model
        self.loss_fn = loss_fn
        self.run_dir = Path(run_dir).absolute() if run_dir is not None else None
        self._events = EventLog(self.run_dir / "events.jsonl") if self.run_dir else None
        self._on_finding = on_finding
        self.monitor = GradMonitor(model, config, self._report, self.run_dir, loss_fn)
        self.steps = 0  # steps checked so far
        self._snapshot_done = self.run_dir is None
        self._metrics: IO[str] | None = None
        self._started = time.perf_counter()
        self._closed = False
        if self.run_dir is not None:
            self._start_folder(config)

    @property
    def findings(self) -> Findings:
        """Every finding so far."""
        return self.monitor.findings

    def _report(self, finding: Finding) -> None:
        if self._events is not None:
            self._events.write(finding)
        if self._on_finding is not None:
            self._on_finding(finding)

    def _start_folder(self, config: MonitorConfig) -> None:
        assert self.run_dir is not None
        if self.run_dir.exists() and any(self.run_dir.iterdir()):
            raise FileExistsError(
                f"run_dir {self.run_dir} already holds files; give a new folder "
                "(gradsight never overwrites a run)"
            )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        device = next((p.device for p in self.model.parameters()), torch.device("cpu"))
        env = collect_env(device, int(torch.initial_seed()), list(sys.argv))
        write_json(self.run_dir / "env.json", env)
        write_json(
            self.run_dir / "config.json",
            {"kind": "watch", "model": type(unwrap(self.model)).__name__,
             "monitor": dataclasses.asdict(config)},
        )  # fmt: skip
        self._metrics = (self.run_dir / "metrics.jsonl").open("a", encoding="utf-8")

    def check(
        self, step: int, batch: Any = None, epoch: int = 0, scaler: Scaler | None = None
    ) -> bool:
        """Check the gradients of step ``step`` (after ``backward()``, before ``step()``);
        return True when the update must be skipped (a NaN/Inf, per the policy).

        ``batch`` is what ``loss_fn`` takes: it lets a NaN/Inf be traced to where it was
        born, and the first step's graph and trace be written. With gradient accumulation,
        call it once per optimizer step, after the last ``backward()``: it sees the summed
        gradients, and replays ``batch`` (the last micro-batch) when one is NaN/Inf.

        ``scaler``: your ``torch.amp.GradScaler``. A step it skips (NaN/Inf from an fp16
        overflow) is counted as ``scaler_skipped_steps``, not reported, unless the skips
        repeat (see :meth:`GradMonitor.check`); keep calling ``scaler.step`` and
        ``scaler.update`` as usual.
        """
        skip = self.monitor.check(step, epoch, batch=batch if self.loss_fn else None, scaler=scaler)
        self.steps = max(self.steps, step + 1)
        if not self._snapshot_done and batch is not None and self.loss_fn is not None:
            self._snapshot_done = True
            self._snapshot(batch)
        return skip

    def _snapshot(self, batch: Any) -> None:
        """Replay the first step (gradients, buffers and random state put back) under a full
        trace, and write its graph and trace; a failure only warns."""
        assert self.run_dir is not None and self.loss_fn is not None
        try:
            with replaying(self.model):
                with ModuleAttribution(self.model) as modules:
                    loss = self.loss_fn(self.model, batch)
                trace = trace_backward(loss, self.model, modules, detail="full", saved=True)
            write_first_step(self.run_dir, trace, draw=False)
        except Exception as exc:  # the user's training goes on without the picture
            warnings.warn(f"could not write the first step's graph: {one_line(exc)}", stacklevel=3)

    def log(self, step: int, **metrics: float) -> None:
        """Append one ``metrics.jsonl`` line: ``{"kind": "step", "step", **metrics}``, with the
        monitor's latest total and per-layer gradient norms."""
        if self._metrics is None:
            return
        record = {"kind": "step", "step": step, **metrics,
                  "grad_norm_total": self.monitor.last_total,
                  "skipped_steps": self.monitor.skipped,
                  "scaler_skipped_steps": self.monitor.scaler_skipped}  # fmt: skip
        if self.monitor.layer_norms:
            record["grad_norm"] = dict(self.monitor.layer_norms)
        self._metrics.write(json.dumps(json_safe(record)) + "\n")
        self._metrics.flush()

    def close(self, status: str = "completed", reason: str | None = None) -> None:
        """Finish the run: read the flags left, take off every hook, and write the summary,
        the plots and the report. Called by the ``with`` block; calling it twice is harmless."""
        if self._closed:
            return
        self._closed = True
        self.monitor.flush()
        self.monitor.remove()
        if self.run_dir is None:
            return
        if self._metrics is not None:
            self._metrics.close()
        if self._events is not None:
            self._events.close()
        nonfinite = next((f for f in self.findings if f.kind == "nonfinite"), None)
        if status == "completed" and nonfinite and self.monitor.config.on_nonfinite == "stop":
            status, reason = "stopped", f"non-finite gradient at step {nonfinite.step}"
        write_json(self.run_dir / "summary.json", {
            "status": status,
            "stop_reason": reason,
            "steps": self.steps,
            "skipped_steps": self.monitor.skipped,
            "scaler_skipped_steps": self.monitor.scaler_skipped,
            "findings": len(self.findings),
            "seconds": round(time.perf_counter() - self._started, 3),
        })  # fmt: skip
        write_run_reports(self.run_dir)

    def __enter__(self) -> WatchedRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
        elif isinstance(exc, KeyboardInterrupt):
            self.close("interrupted", "interrupted (Ctrl-C)")
        else:
            self.close("failed", one_line(exc))


def watch(
    model: nn.Module,
    loss_fn: LossFn | None = None,
    run_dir: str | Path | None = None,
    on_finding: Callable[[Finding], object] | None = None,
    **monitor_options: Any,
) -> WatchedRun:
    """Watch the gradients of ``model`` in your own training loop.

    Args:
        model: the model (a ``torch.compile`` wrapper is fine).
        loss_fn: ``loss_fn(model, batch) -> loss`` as your step computes it; with it a
            NaN/Inf is traced to where it was born and the first step is drawn.
        run_dir: where to write the run folder (created; must be new or empty); None
            writes nothing. Under ``torchrun`` only rank 0 writes it; every rank checks, and
            the ranks' NaN/Inf flags are all-reduced so they all decide alike.
        on_finding: called with each finding (``print`` shows them as they come).
        monitor_options: :class:`~gradsight.health.config.MonitorConfig` fields, e.g.
            ``on_nonfinite="warn"``, ``log_every=50``.

    Raises:
        FileExistsError: ``run_dir`` already holds files.

    >>> model = torch.nn.Linear(3, 2)
    >>> def loss_fn(model, batch):
    ...     return model(batch).pow(2).mean()
    >>> with watch(model, loss_fn) as run:
    ...     for step in range(3):
    ...         model.zero_grad()
    ...         loss_fn(model, torch.ones(4, 3)).backward()
    ...         skip = run.check(step, torch.ones(4, 3))
    >>> run.steps, run.findings
    (3, [])
    """
    config = MonitorConfig(**monitor_options)
    ranks = current_ranks()
    if ranks is not None and not ranks.is_main:
        run_dir = None  # under torchrun rank 0 writes the folder; every rank checks
    return WatchedRun(model, loss_fn, Path(run_dir) if run_dir else None, config, on_finding)
