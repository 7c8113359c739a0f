"""A PyTorch Lightning callback: the gradient monitor and the run folder in ``Trainer.fit``.

>>> from gradsight.integrations.lightning import GradsightCallback
>>> trainer = lightning.Trainer(callbacks=[GradsightCallback(run_dir="runs/lit")])  # doctest: +SKIP

The callback is :func:`gradsight.watch` driven by Lightning's hooks:

- ``on_train_batch_start`` keeps the batch (already on the device) and the random state
  before ``training_step``, so a replay draws the same dropout masks;
- ``on_before_optimizer_step`` checks the gradients once per optimizer step: after every
  ``backward`` of an accumulation (``accumulate_grad_batches``), after mixed precision's
  unscale, and before ``gradient_clip_val`` clips them (the norms seen are the raw ones).
  Steps the ``GradScaler`` of ``precision="16-mixed"`` skips are counted, reported only when
  they repeat. A NaN/Inf step is replayed through the module's own ``training_step``
  (its ``self.log`` calls dropped) to say where the value was born; a skipped update has
  its gradients set to None so the optimizer leaves the weights alone; ``stop`` stops the
  trainer after this step;
- the run folder is written by global rank 0 only; every rank checks its own gradients.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

try:
    import lightning.pytorch as pl
except ImportError:  # pragma: no cover - tested in a subprocess without it
    raise ImportError(
        "gradsight.integrations.lightning needs PyTorch Lightning: "
        "pip install 'gradsight[lightning]' (or pip install lightning)"
    ) from None

from gradsight.health.config import ends_interval
from gradsight.health.findings import Finding
from gradsight.health.monitor import MonitorConfig
from gradsight.session import WatchedRun
from gradsight.train.loop import one_line

__all__ = ["GradsightCallback"]


def _loss_of(output: Any) -> torch.Tensor:
    """The loss a ``training_step`` returned: a tensor, or a mapping's ``"loss"``."""
    loss = output["loss"] if isinstance(output, Mapping) else output
    if not isinstance(loss, torch.Tensor):
        raise TypeError(f"training_step returned {type(output).__name__}, not a loss tensor")
    return loss


class GradsightCallback(pl.Callback):
    """Watch the gradients of a LightningModule; write the run folder from rank 0.

    Args:
        run_dir: the run folder (new or empty), written by global rank 0; None writes
            nothing. ``env.json``, ``config.json``, ``metrics.jsonl`` (every ``log_every``
            optimizer steps: the loss, what the module logged, gradient norms),
            ``events.jsonl``, the first step's graph and trace, and at the end
            ``summary.json``, the plots and ``report.html``.
        on_finding: called with each finding, on every rank.
        monitor_options: :class:`~gradsight.health.config.MonitorConfig` fields, e.g.
            ``on_nonfinite="skip"``, ``log_every=50``, ``scaler_patience=20``.

    Manual optimization (``automatic_optimization = False``) is watched too, but a NaN/Inf
    is not replayed there: ``training_step`` would step the optimizers again.
    """

    def __init__(
        self,
        run_dir: str | Path | None = None,
        on_finding: Callable[[Finding], object] | None = None,
        **monitor_options: Any,
    ) -> None:
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.on_finding = on_finding
        self.config = MonitorConfig(**monitor_options)
        self.run: WatchedRun | None = None
        self._batch: Any = None
        self._batch_idx = 0
        self._stepped: int | None = None  # the optimizer step taken in this batch
        self._loaded: dict[str, Any] | None = None  # monitor state from a checkpoint

    # -- start and end ----------------------------------------------------------------------
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        loss_fn = self._replay_step if pl_module.automatic_optimization else None
        run_dir = self.run_dir if trainer.is_global_zero else None
        self.run = WatchedRun(pl_module, loss_fn, run_dir, self.config, self.on_finding)
        if self._loaded is not None:
            self.run.monitor.load_state_dict(self._loaded)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.run is not None:
            self.run.close()

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        if self.run is None:
            return
        if isinstance(exception, KeyboardInterrupt):
            self.run.close("interrupted", "interrupted (Ctrl-C)")
        else:
            self.run.close("failed", one_line(exception))

    # -- each step --------------------------------------------------------------------------
    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._batch, self._batch_idx = batch, batch_idx
        self._stepped = None
        if self.run is not None:  # the random state training_step starts from
            self.run.monitor.remember_rng(pl_module, again=True)

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        if self.run is None:
            return
        step = trainer.global_step
        scaler = getattr(trainer.precision_plugin, "scaler", None)
        skip = self.run.check(step, self._batch, trainer.current_epoch, scaler=scaler)
        self._stepped = step
        if skip:
            optimizer.zero_grad(set_to_none=True)  # no gradient: the optimizer skips them all
            if self.config.on_nonfinite == "stop":
                trainer.should_stop = True

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        step, self._stepped = self._stepped, None
        if self.run is None or step is None or not ends_interval(step, self.config.log_every):
            return
        metrics: dict[str, float] = {"epoch": trainer.current_epoch}
        metrics |= {k: float(v) for k, v in trainer.callback_metrics.items()
                    if k != "step" and v.numel() == 1}  # fmt: skip
        if outputs is not None:
            metrics["loss"] = float(_loss_of(outputs).detach())
        self.run.log(step, **metrics)

    def _replay_step(self, module: torch.nn.Module, batch: Any) -> torch.Tensor:
        """The step's loss as ``training_step`` computes it, for the monitor's replay; the
        module's ``self.log`` calls are dropped so the replay leaves no trace in its logs."""
        assert isinstance(module, pl.LightningModule)
        takes_index = len(inspect.signature(module.training_step).parameters) >= 2
        args = (batch, self._batch_idx) if takes_index else (batch,)
        saved = module.__dict__.get("log"), module.__dict__.get("log_dict")
        module.log = module.log_dict = lambda *a, **k: None  # type: ignore[method-assign,assignment]
        try:
            return _loss_of(module.training_step(*args))
        finally:
            for name, value in zip(("log", "log_dict"), saved, strict=True):
                if value is None:
                    del module.__dict__[name]
                else:
                    module.__dict__[name] = value

    # -- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The monitor's state (running medians, what was reported), saved in checkpoints."""
        return self.run.monitor.state_dict() if self.run is not None else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict:
            self._loaded = state_dict
            if self.run is not None:
                self.run.monitor.load_state_dict(state_dict)
