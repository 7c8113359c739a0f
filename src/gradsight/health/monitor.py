"""The gradient health monitor: name the layer where NaN/Inf is born, what explodes, vanishes
or never gets a gradient.

Each step costs one fused ``torch._foreach_norm`` over the gradients and, by default, one
device sync (the total norm, which doubles as the non-finite flag). ``check_every`` > 1
reads that flag every N steps instead, for accelerators where a per-step sync stalls the
pipeline. Per-layer statistics are read only every ``log_every`` steps; the expensive checks
(birthplace replay, the forward sentinel for masked NaNs) run only when needed or on
sentinel steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from gradsight.autograd import tensors
from gradsight.autograd.attribution import is_compiled, unwrap
from gradsight.autograd.handles import HookHandle
from gradsight.health.birthplace import LossFn, RngState, cuda_devices, rng_state
from gradsight.health.config import MonitorConfig, ends_interval
from gradsight.health.dead_relu import DeadReluWatch
from gradsight.health.findings import Finding, Findings
from gradsight.health.masked import MaskedWatch
from gradsight.health.nograd import NoGradWatch
from gradsight.health.nonfinite import (
    Replay,
    check_replay_args,
    compiled_note,
    diagnose,
    late_note,
    replay_of,
    save_batch,
)
from gradsight.health.norms import NormChecks
from gradsight.health.ranks import across_ranks, global_flags
from gradsight.health.scaler import Scaler, ScalerWatch, grad_factor
from gradsight.health.updates import UpdateRatios
from gradsight.train.events import Observer, TrainState

__all__ = ["GradMonitor", "MonitorConfig"]  # MonitorConfig: also importable from here


class GradMonitor(Observer):
    """Watch every training step's gradients and report findings as they happen.

    Use it as an observer of :func:`gradsight.train.fit`, or in your own loop: call
    :meth:`check` after each ``loss.backward()`` and before ``optimizer.step()``; it
    returns whether the update should be skipped. With ``config.check_every`` > 1 also
    call :meth:`flush` after the last step, so the last steps' flags are read.

    When a gradient turns NaN/Inf, the step is replayed on the real model from its
    pre-step weights (never a copy) to say where the value was born; give ``loss_fn`` so
    the replay computes the loss as your step does (dict outputs, sequence targets, your
    autocast). A forward pre-hook on ``model`` keeps the random state of each step's
    first forward pass, so dropout repeats in the replay; :meth:`remove` (or leaving the
    ``with`` block) takes it off. As an observer of :func:`~gradsight.train.fit` it takes
    that state from the loop's ``before_forward`` event instead, and holds no hook.

    Its state (medians, counters, what was reported) goes into checkpoints through
    :meth:`state_dict`, so a resumed run neither repeats nor forgets findings.

    Args:
        model: the model whose parameters are watched; a ``torch.compile`` wrapper is
            unwrapped for parameter names, and replayed eagerly.
        config: thresholds and policies.
        on_finding: called with each :class:`Finding` (e.g. write events.jsonl, print it).
        run_dir: where ``nonfinite-step<N>.pt`` (batch + weights) is saved for reproduction.
        loss_fn: ``loss_fn(model, batch) -> loss``, the scalar loss exactly as the training
            step computes it; :meth:`check` passes it ``batch=``. Without it, ``inputs=``
            and ``targets=`` replay ``cross_entropy(model(inputs), targets)``.

    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 3))
    >>> def loss_fn(model, batch):
    ...     return (model(batch["x"]) - 100).sqrt().sum()  # sqrt of negatives: NaN
    >>> with GradMonitor(model, loss_fn=loss_fn) as monitor:
    ...     batch = {"x": torch.ones(2, 4)}
    ...     loss_fn(model, batch).backward()
    ...     skip = monitor.check(0, batch=batch)
    >>> skip, monitor.findings[0].phase, monitor.findings[0].op
    (True, 'forward', 'sqrt')
    """

    def __init__(
        self,
        model: nn.Module,
        config: MonitorConfig | None = None,
        on_finding: Callable[[Finding], object] | None = None,
        run_dir: Path | None = None,
        loss_fn: LossFn | None = None,
    ) -> None:
        self.model = model
        self.config = config or MonitorConfig()
        self.on_finding = on_finding
        self.run_dir = run_dir
        self.loss_fn = loss_fn
        self.findings = Findings()
        self.named = [(n, p) for n, p in unwrap(model).named_parameters()]
        self._nograd = NoGradWatch(self.named)
        self._compiled = is_compiled(model)
        self._said_compiled = False
        self._rng: RngState | None = None  # random state before this step's first forward
        self._rng_devices: list[int] | None = None
        self._hooks = HookHandle([model.register_forward_pre_hook(self.remember_rng)])
        self._share_total = False  # set in fit() with clipping on
        self._total: Tensor | None = None  # this step's total gradient norm, for the loop
        self.skipped = 0
        self.last_total = math.nan
        self._diagnosed = False
        self._norms = NormChecks(self.config)
        self._updates = UpdateRatios(self.named, self.config.update_band)
        self._masked = MaskedWatch(self.config.sentinel_every)
        self._relus = DeadReluWatch(unwrap(model)) if self.config.dead_relu else None
        self._scaler = ScalerWatch(self.config.scaler_patience)
        self._unread: list[tuple[int, int, Tensor | float]] = []  # (step, epoch, total) unread

    @property
    def totals(self) -> list[float]:
        """The running window of total gradient norms (the median's)."""
        return list(self._norms.totals)

    @property
    def scaler_skipped(self) -> int:
        """Steps whose NaN/Inf gradients a ``GradScaler`` skipped (see :meth:`check`)."""
        return self._scaler.skipped

    @property
    def layer_norms(self) -> dict[str, float]:
        """Per-layer gradient norms of the latest log step."""
        return self._norms.layer_norms

    def _emit(self, *findings: Finding) -> None:
        for finding in findings:
            self.findings.append(finding)
            if self.on_finding is not None:
                self.on_finding(finding)

    def remember_rng(self, module: nn.Module, args: Any = (), again: bool = False) -> None:
        """Keep the random state of the step's first forward pass with gradients (an
        evaluation under ``torch.no_grad()`` does not count), for the replay: the forward
        pre-hook calls it; a loop that knows where its step starts calls it ``again``."""
        if (self._rng is None or again) and torch.is_grad_enabled():
            if self._rng_devices is None:
                self._rng_devices = cuda_devices(module)
            self._rng = rng_state(self._rng_devices)

    def remove(self) -> None:
        """Remove every hook the monitor holds; the findings stay readable."""
        self._hooks.remove()
        self._masked.remove()
        if self._relus is not None:
            self._relus.remove()

    def __enter__(self) -> GradMonitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    # -- the per-step check ---------------------------------------------------------------
    def check(
        self,
        step: int,
        epoch: int = 0,
        inputs: Tensor | None = None,
        targets: Tensor | None = None,
        batch: Any = None,
        scaler: Scaler | None = None,
    ) -> bool:
        """Check the gradients now in ``.grad``; return True when the update must be skipped.

        The batch lets a NaN/Inf be traced to where it was born: ``batch`` (anything your
        ``loss_fn`` takes), or ``inputs``/``targets`` for cross-entropy on a tensor output.

        With mixed precision pass the ``torch.amp.GradScaler``: a NaN/Inf step is one it
        skips itself, counted (:attr:`scaler_skipped`) and reported only when skips repeat
        (``config.scaler_patience`` in a row, or a scale below 1); True then comes only
        under ``on_nonfinite="stop"``. Norms are read unscaled, whether or not
        ``scaler.unscale_(optimizer)`` ran.

        Raises:
            ConfigError: ``batch`` without a ``loss_fn``, or both ``batch`` and ``inputs``.
        """
        check_replay_args(self.loss_fn, inputs, batch)  # the replay is built only on NaN/Inf
        rng, self._rng = self._rng, None  # the next forward starts a new step
        if self._compiled and not self._said_compiled:
            self._said_compiled = True
            self._emit(compiled_note(step, epoch))
        grads = [(n, g) for n, p in self.named if (g := p.grad) is not None]
        log_step = ends_interval(step, self.config.log_every)
        if not log_step or not grads:  # else _check_layers looks, with the norms
            self._emit(*self._nograd.check(step, epoch, len(grads)))
        if not grads:
            return False
        factor = grad_factor(scaler)  # scaled gradients: their norms in float64 (no overflow)
        wide = torch.float64 if factor != 1.0 and grads[0][1].device.type != "mps" else None
        norms = torch.stack(torch._foreach_norm([g for _, g in grads], 2, dtype=wide))  # (P,)
        total = torch.linalg.vector_norm(norms)  # the NaN/Inf flag: NaN/Inf iff any entry is
        if self._share_total:  # fit() clips with it: no second pass over the gradients
            self._total = total
        now = tensors.read_is_free(total.device)  # the CPU: read at once, no sync
        self._unread.append((step, epoch, float(total) if now else total))
        if not self._read_now(step, scaler is not None):
            return False  # read later, without a sync now
        values = global_flags(self._read_unread(), total.device)  # this step's one sync
        late = self._check_read(self._unread[:-1], values, step) if len(values) > 1 else None
        self._unread = []
        if late is not None:
            return late
        self.last_total = values[-1] * factor
        if not math.isfinite(self.last_total):
            names, replay = [n for n, _ in grads], replay_of(self.loss_fn, inputs, targets, batch)
            if scaler is not None and scaler.is_enabled():
                found = self._scaler.skipped_step(step, epoch, scaler.get_scale())
                if found is None:
                    return False  # the scaler skips this update and lowers the scale
                self._emit(found)
                stop = self._nonfinite(step, epoch, names, norms, replay, rng)
                return stop and self.config.on_nonfinite == "stop"
            return self._nonfinite(step, epoch, names, norms, replay, rng)
        self._scaler.finite_step()
        self._emit(*self._norms.total(step, epoch, self.last_total))
        if log_step:
            self._check_layers(step, epoch, [n for n, _ in grads], norms * factor)
        return False

    def _read_now(self, step: int, scaler: bool) -> bool:
        """Sync this step: every step by default or with a scaler (whose step syncs anyway);
        else every ``check_every`` steps, at each log interval, and on sentinel steps."""
        every = self.config.check_every
        return (
            every == 1
            or scaler
            or (step + 1) % every == 0
            or ends_interval(step, self.config.log_every)
            or self._masked.active
        )

    def _read_unread(self) -> list[float]:
        """The totals not read yet, as numbers: the device ones synced in one transfer."""
        return tensors.read_scalars([t for _, _, t in self._unread])

    def _check_read(
        self,
        earlier: list[tuple[int, int, Tensor | float]],
        values: list[float],
        now: int,
    ) -> bool | None:
        """Check the totals ``values`` of ``earlier`` steps, read only at step ``now``.

        The first non-finite one is reported as late, and the skip decision for the update
        of step ``now`` is returned; None when all are finite.
        """
        for (step, epoch, _), total in zip(earlier, values, strict=False):
            if not math.isfinite(total):
                return self._late_nonfinite(step, epoch, now)
            self._emit(*self._norms.total(step, epoch, total))
        return None

    def _late_nonfinite(self, first: int, epoch: int, now: int) -> bool:
        """A NaN/Inf flag read ``now``, set at step ``first`` (``check_every`` > 1)."""
        self.last_total = math.nan
        policy = self.config.on_nonfinite  # stop or warn: skip needs check_every == 1
        if not self._diagnosed:
            self._diagnosed = True
            self._emit(late_note(first, epoch, now, self.config.check_every, policy))
        skip = policy == "stop"  # under --clip-grad-norm the loop skips a NaN/Inf update itself
        self.skipped += skip
        return skip

    def flush(self, step: int | None = None) -> None:
        """Read the NaN/Inf flags of steps not read yet (``check_every`` > 1) and report them.

        ``step``: the step now (default: the one after the last checked step).
        """
        if not self._unread:
            return
        values = global_flags(self._read_unread(), self.named[0][1].device)
        now = self._unread[-1][0] + 1 if step is None else step
        late = self._check_read(self._unread, values, now)
        self._unread = []
        if late is None:
            self.last_total = values[-1]

    # -- checkpointing ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs to go on as if never stopped.

        Plain Python values, and the dead-ReLU window as CPU bool tensors; the flags not
        read yet are synced. The findings are not saved (they are in events.jsonl).
        """
        unread = [(s, e, v) for (s, e, _), v in zip(self._unread, self._read_unread(), strict=True)]
        return {
            **self._norms.state_dict(),
            "skipped": self.skipped,
            "last_total": self.last_total,
            "no_grad": self._nograd.state_dict(),
            "diagnosed": self._diagnosed,
            "update_warned": sorted(self._updates.warned),
            "unread": unread,
            "dead_relu": self._relus.state_dict() if self._relus is not None else {},
            "scaler": self._scaler.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved."""
        self._norms.load_state_dict(state)
        self.skipped = int(state["skipped"])
        self.last_total = float(state["last_total"])
        if "no_grad" in state:  # older checkpoints kept a flag only; look again then
            self._nograd.load_state_dict(state["no_grad"])
        self._diagnosed = bool(state["diagnosed"])
        self._updates.warned = set(state["update_warned"])
        self._unread = [(int(s), int(e), float(v)) for s, e, v in state["unread"]]
        if self._relus is not None:  # absent from checkpoints older than the window's saving
            self._relus.load_state_dict(state.get("dead_relu", {}))
        self._scaler.load_state_dict(state.get("scaler", {}))

    def _check_layers(self, step: int, epoch: int, names: list[str], norms: Tensor) -> None:
        grads = dict(zip(names, norms.tolist(), strict=True))
        self._emit(*self._nograd.check(step, epoch, len(names), grads))
        sizes = torch.stack(torch._foreach_norm([p.detach() for _, p in self.named])).tolist()
        weights = {name: w for (name, _), w in zip(self.named, sizes, strict=True)}
        self._emit(*self._norms.layers(step, epoch, grads, weights))

    def _nonfinite(
        self, step: int, epoch: int, names: list[str], norms: Tensor,
        replay: Replay | None, rng: RngState | None,
    ) -> bool:  # fmt: skip
        bad = [n for n, v in zip(names, norms.tolist(), strict=True) if not math.isfinite(v)]
        policy = self.config.on_nonfinite
        skip = policy != "warn"
        self.skipped += skip
        if self._diagnosed:
            return skip
        self._diagnosed = True
        action = {"stop": "stopping", "skip": "skipping this update", "warn": "continuing"}[policy]
        every = [n for n, _ in self.named]
        self._emit(across_ranks(diagnose(self.model, step, epoch, bad, every, replay, rng, action)))
        if replay is not None and self.run_dir is not None:
            save_batch(self.run_dir / f"nonfinite-step{step}.pt", self.model, step, replay.batch)
        return skip

    # -- as an observer of the training loop --------------------------------------------
    def on_train_start(self, state: TrainState) -> None:
        # The loop says when a forward starts: no pre-hook needed on the model (it puts the
        # model's every call on the slow path of Module.__call__: ~1% of a SimpleCNN step).
        self._hooks.remove()
        self._share_total = state.config.clip_grad_norm is not None

    def on_before_forward(self, state: TrainState) -> None:
        self.remember_rng(state.model, again=True)
        self._masked.before_forward(state.model, state.step)

    def on_after_forward(self, state: TrainState) -> None:
        self._masked.after_forward(state.model, state.loss)

    def on_after_backward(self, state: TrainState) -> None:
        skip = self.check(state.step, state.epoch, state.inputs, state.targets, scaler=state.scaler)
        state.grad_norm, self._total = self._total, None
        finite = math.isfinite(self.last_total)
        self._emit(*self._masked.after_backward(self.model, state.step, state.epoch, finite))
        if skip:
            state.skip_step = True
            if self.config.on_nonfinite == "stop":
                state.request_stop(f"non-finite gradient at step {state.step}")

    def on_train_end(self, state: TrainState, status: str) -> None:
        self.flush(state.step)
        self.remove()

    def on_before_step(self, state: TrainState) -> None:
        if ends_interval(state.step, self.config.update_every) and not state.skip_step:
            self._updates.before()

    def on_after_step(self, state: TrainState) -> None:
        cfg, step = self.config, state.step - 1  # the loop has counted the step just taken
        if self._relus is not None and ends_interval(step, cfg.dead_relu_every):
            dead = self._relus.findings(
                state.step, state.epoch, cfg.dead_relu_every, cfg.dead_relu_fraction
            )
            self._emit(*dead)
        if self._updates.pending:
            ratios, found = self._updates.after(step, state.epoch)
            state.extras["update_ratio"] = ratios
            self._emit(*found)
        if not ends_interval(step, cfg.log_every):
            return  # the loop logs after this step: put the norms in that line
        state.extras["grad_norm_total"] = self.last_total
        state.extras["skipped_steps"] = self.skipped
        if self.layer_norms:
            state.extras["grad_norm"] = dict(self.layer_norms)
