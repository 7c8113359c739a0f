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
import statistics
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from gradsight.autograd.attribution import ModuleAttribution, is_compiled, module_type, unwrap
from gradsight.autograd.handles import HookHandle
from gradsight.autograd.trace import BackwardTracer
from gradsight.config import check_nonfinite_policy
from gradsight.health.birthplace import LossFn, RngState, cuda_devices, rng_state
from gradsight.health.dead_relu import DeadReluWatch
from gradsight.health.findings import Finding
from gradsight.health.naming import place
from gradsight.health.nograd import NoGradWatch
from gradsight.health.nonfinite import Replay, diagnose, replay_of, save_batch
from gradsight.health.sentinel import NonFiniteSentinel, SentinelHit
from gradsight.train.events import Observer, TrainState

__all__ = ["GradMonitor", "MonitorConfig"]


@dataclass(frozen=True)
class MonitorConfig:
    """Thresholds and policies of :class:`GradMonitor`.

    Raises:
        ConfigError: an unknown policy or a non-positive threshold.
    """

    on_nonfinite: str = "stop"  # stop: skip the update and stop; skip: drop it, go on; warn
    explode_norm: float = 1e3  # total gradient norm above this is exploding
    explode_factor: float = 10.0  # ... or above this many times its running median
    median_window: int = 50  # steps in the running median
    warmup_steps: int = 5  # steps before the factor test applies
    vanish_ratio: float = 1e-6  # layer ||grad|| / ||weight|| below this is vanishing ...
    vanish_checks: int = 3  # ... for this many log intervals in a row
    log_every: int = 20
    sentinel_every: int = 200  # steps between forward NaN sentinels (0: first step only)
    update_every: int = 100  # steps between per-layer update/weight ratios (0: never)
    update_band: tuple[float, float] = (1e-5, 1e-1)  # warn outside; healthy is about 1e-3
    dead_relu: bool = False  # opt-in: forward hooks on every nn.ReLU
    dead_relu_every: int = 100  # steps in a dead-ReLU window
    dead_relu_fraction: float = 0.5  # warn when more units than this never fired
    check_every: int = 1  # steps between reads of the NaN/Inf flag (a device sync each)

    def __post_init__(self) -> None:
        check_nonfinite_policy(self.on_nonfinite, self.check_every)


def _layer(param_name: str) -> str:
    return param_name.rpartition(".")[0] or param_name


def _per_layer(norms: Iterable[tuple[str, float]]) -> dict[str, float]:
    """Combine per-parameter norms into per-layer norms: sqrt of the sum of squares."""
    squares: dict[str, float] = {}
    for name, norm in norms:
        squares[_layer(name)] = squares.get(_layer(name), 0.0) + norm * norm
    return {layer: math.sqrt(sq) for layer, sq in squares.items()}


def _explosion(
    value: float, history: Sequence[float], min_history: int, cfg: MonitorConfig
) -> str | None:
    """Why ``value`` is exploding (above the absolute bound, or k x the median of
    ``history`` once it holds ``min_history`` values), or None when it is not."""
    if value > cfg.explode_norm:
        return f"above {cfg.explode_norm:g}"
    median = statistics.median(history) if len(history) >= min_history else None
    if median is not None and median > 0 and value > cfg.explode_factor * median:
        return f"{value / median:.0f}x its running median {median:.3g}"
    return None


_COMPILED = (
    "the model is torch.compile'd: the backward of each compiled region is one autograd node "
    "(CompiledFunctionBackward), so traces and graphs show it as one step; a NaN/Inf is "
    "located by replaying the step eagerly"
)


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

    Its state (running medians, counters, what was already reported) goes into
    checkpoints through :meth:`state_dict` / :meth:`load_state_dict`, so a resumed run
    neither repeats nor forgets findings.

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
        self.findings: list[Finding] = []
        self.named = [(n, p) for n, p in unwrap(model).named_parameters()]
        self._nograd = NoGradWatch(self.named)
        self._compiled = is_compiled(model)
        self._said_compiled = False
        self._rng: RngState | None = None  # random state before this step's first forward
        self._rng_devices: list[int] | None = None
        self._hooks = HookHandle([model.register_forward_pre_hook(self._remember_rng)])
        self._share_total = False  # set in fit() with clipping on
        self._total: Tensor | None = None  # this step's total gradient norm, for the loop
        self.totals: deque[float] = deque(maxlen=self.config.median_window)
        self.skipped = 0
        self.last_total = math.nan
        self._diagnosed = False
        self._exploding = False
        self._low_counts: dict[str, int] = {}
        self._layer_history: dict[str, deque[float]] = {}
        self._exploded: set[str] = set()
        self._vanished: set[str] = set()
        self._sentinel: NonFiniteSentinel | None = None
        self._sentinel_hit: SentinelHit | None = None
        self._before: list[Tensor] | None = None  # weights before an update-ratio step
        self._update_warned: set[str] = set()
        self._relus = DeadReluWatch(unwrap(model)) if self.config.dead_relu else None
        self._modules: ModuleAttribution | None = None
        self._tracer: BackwardTracer | None = None
        self._unread: list[tuple[int, int, Tensor | float]] = []  # (step, epoch, total) unread

    def _emit(self, finding: Finding) -> None:
        self.findings.append(finding)
        if self.on_finding is not None:
            self.on_finding(finding)

    def _remember_rng(self, module: nn.Module, args: Any) -> None:
        """Forward pre-hook: keep the random state of the step's first forward pass with
        gradients (an evaluation under ``torch.no_grad()`` does not count)."""
        if self._rng is None and torch.is_grad_enabled():
            if self._rng_devices is None:
                self._rng_devices = cuda_devices(module)
            self._rng = rng_state(self._rng_devices)

    def remove(self) -> None:
        """Remove every hook the monitor holds; the findings stay readable."""
        self._hooks.remove()
        for hooks in (self._relus, self._modules, self._tracer):
            if hooks is not None:
                hooks.remove()
        if self._sentinel is not None:
            self._sentinel.__exit__()
            self._sentinel = None

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
    ) -> bool:
        """Check the gradients now in ``.grad``; return True when the update must be skipped.

        The batch lets a NaN/Inf be traced to where it was born: ``batch`` (anything your
        ``loss_fn`` takes), or ``inputs``/``targets`` for cross-entropy on a tensor output.

        Raises:
            ConfigError: ``batch`` without a ``loss_fn``, or both ``batch`` and ``inputs``.
        """
        replay = replay_of(self.loss_fn, inputs, targets, batch)
        rng, self._rng = self._rng, None  # the next forward starts a new step
        if self._compiled and not self._said_compiled:
            self._said_compiled = True
            self._emit(Finding(step, epoch, "compiled", "info", _COMPILED))
        grads = [(n, p.grad) for n, p in self.named if p.grad is not None]
        log_step = (step + 1) % self.config.log_every == 0
        if not log_step or not grads:  # else _check_layers looks, with the norms
            for finding in self._nograd.check(step, epoch, len(grads)):
                self._emit(finding)
        if not grads:
            return False
        norms = torch.stack(torch._foreach_norm([g for _, g in grads]))  # (P,) on the device
        total = torch.linalg.vector_norm(norms)  # the NaN/Inf flag: NaN/Inf iff any entry is
        if self._share_total:  # fit() clips with it: no second pass over the gradients
            self._total = total
        # On the CPU reading it costs no sync; keeping the tensor alive would cost time.
        self._unread.append((step, epoch, float(total) if total.device.type == "cpu" else total))
        if not self._read_now(step):
            return False  # read later, without a sync now
        values = self._read_unread()  # the one sync of this step
        late = self._check_read(self._unread[:-1], values, step)
        self._unread = []
        if late is not None:
            return late
        self.last_total = values[-1]
        if not math.isfinite(self.last_total):
            return self._nonfinite(step, epoch, [n for n, _ in grads], norms, replay, rng)
        self._check_total(step, epoch, self.last_total)
        if log_step:
            self._check_layers(step, epoch, [n for n, _ in grads], norms)
        return False

    def _read_now(self, step: int) -> bool:
        """Sync this step: every step by default; else every ``check_every`` steps, at
        each log interval, and on sentinel steps (whose masked checks need the value)."""
        every = self.config.check_every
        return (
            every == 1
            or (step + 1) % every == 0
            or (step + 1) % self.config.log_every == 0
            or self._tracer is not None
            or self._sentinel_hit is not None
        )

    def _read_unread(self) -> list[float]:
        """The totals not read yet, as numbers: the device ones synced in one transfer."""
        on_device = [t for _, _, t in self._unread if isinstance(t, Tensor)]
        synced = iter(torch.stack([t.to(on_device[-1].device) for t in on_device]).tolist()
                      if on_device else [])  # fmt: skip
        return [float(next(synced)) if isinstance(t, Tensor) else t for _, _, t in self._unread]

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
            self._check_total(step, epoch, total)
        return None

    def _check_total(self, step: int, epoch: int, total: float) -> None:
        self._check_exploding(step, epoch, total)
        self.totals.append(total)

    def _late_nonfinite(self, first: int, epoch: int, now: int) -> bool:
        """A NaN/Inf flag read ``now``, set at step ``first`` (``check_every`` > 1)."""
        self.last_total = math.nan
        policy = self.config.on_nonfinite  # stop or warn: skip needs check_every == 1
        if not self._diagnosed:
            self._diagnosed = True
            action = "stopping" if policy == "stop" else "continuing"
            msg = (
                f"NaN/Inf gradient at step {first}, read at step {now}: the flag is read every "
                f"{self.config.check_every} steps, so the updates of steps {first}..{now - 1} "
                "may have used it; rerun with --nonfinite-check-every 1 to name where it was "
                f"born; {action}"
            )
            self._emit(Finding(first, epoch, "nonfinite", "error", msg))
        skip = policy == "stop"  # under --clip-grad-norm the loop skips a NaN/Inf update itself
        self.skipped += skip
        return skip

    def flush(self, step: int | None = None) -> None:
        """Read the NaN/Inf flags of steps not read yet (``check_every`` > 1) and report them.

        ``step``: the step now (default: the one after the last checked step).
        """
        if not self._unread:
            return
        values = self._read_unread()
        now = self._unread[-1][0] + 1 if step is None else step
        late = self._check_read(self._unread, values, now)
        self._unread = []
        if late is None:
            self.last_total = values[-1]

    # -- checkpointing ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs to go on as if never stopped.

        Plain Python values, and the dead-ReLU window as CPU bool tensors. The flags of
        steps not read yet are synced and stored as numbers. The findings list itself is
        not saved (the findings are in events.jsonl).
        """
        unread = [(s, e, v) for (s, e, _), v in zip(self._unread, self._read_unread(), strict=True)]
        return {
            "totals": list(self.totals),
            "skipped": self.skipped,
            "last_total": self.last_total,
            "no_grad": self._nograd.state_dict(),
            "diagnosed": self._diagnosed,
            "exploding": self._exploding,
            "low_counts": dict(self._low_counts),
            "layer_history": {k: list(v) for k, v in self._layer_history.items()},
            "exploded": sorted(self._exploded),
            "vanished": sorted(self._vanished),
            "update_warned": sorted(self._update_warned),
            "unread": unread,
            "dead_relu": self._relus.state_dict() if self._relus is not None else {},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved."""
        window = self.config.median_window
        self.totals = deque(state["totals"], maxlen=window)
        self.skipped = int(state["skipped"])
        self.last_total = float(state["last_total"])
        if "no_grad" in state:  # older checkpoints kept a flag only; look again then
            self._nograd.load_state_dict(state["no_grad"])
        self._diagnosed, self._exploding = bool(state["diagnosed"]), bool(state["exploding"])
        self._low_counts = {k: int(v) for k, v in state["low_counts"].items()}
        self._layer_history = {
            k: deque(v, maxlen=window) for k, v in state["layer_history"].items()
        }
        self._exploded, self._vanished = set(state["exploded"]), set(state["vanished"])
        self._update_warned = set(state["update_warned"])
        self._unread = [(int(s), int(e), float(v)) for s, e, v in state["unread"]]
        if self._relus is not None:  # absent from checkpoints older than the window's saving
            self._relus.load_state_dict(state.get("dead_relu", {}))

    def _check_exploding(self, step: int, epoch: int, total: float) -> None:
        why = _explosion(total, self.totals, self.config.warmup_steps, self.config)
        if why is not None and not self._exploding:
            msg = f"total gradient norm {total:.3g} is exploding ({why}); lower the lr or clip"
            self._emit(Finding(step, epoch, "exploding", "warning", msg, value=total))
        self._exploding = why is not None

    def _check_layers(self, step: int, epoch: int, names: list[str], norms: Tensor) -> None:
        grad = dict(zip(names, norms.tolist(), strict=True))
        for finding in self._nograd.check(step, epoch, len(names), grad):
            self._emit(finding)
        weights = torch.stack(torch._foreach_norm([p.detach() for _, p in self.named])).tolist()
        self.layer_norms = _per_layer(grad.items())
        weight_norms = _per_layer(
            (name, w) for (name, _), w in zip(self.named, weights, strict=True) if name in grad
        )
        self._check_layer_explosions(step, epoch)
        for layer, norm in self.layer_norms.items():
            ratio = norm / max(weight_norms[layer], 1e-12)
            low = ratio < self.config.vanish_ratio
            self._low_counts[layer] = self._low_counts.get(layer, 0) + 1 if low else 0
            if self._low_counts[layer] >= self.config.vanish_checks and layer not in self._vanished:
                self._vanished.add(layer)
                msg = (
                    f"{layer}: gradient is vanishing, ||grad||/||weight|| = {ratio:.2g} below "
                    f"{self.config.vanish_ratio:g} for {self.config.vanish_checks} checks; its "
                    "weights barely move (try ReLU, normalisation or residual connections)"
                )
                self._emit(Finding(step, epoch, "vanishing", "warning", msg, layer, value=ratio))

    def _check_layer_explosions(self, step: int, epoch: int) -> None:
        """Per layer: norm above the absolute threshold, or k x its own running median."""
        cfg = self.config
        for layer, norm in self.layer_norms.items():
            history = self._layer_history.setdefault(layer, deque(maxlen=cfg.median_window))
            why = _explosion(norm, history, cfg.vanish_checks, cfg)
            history.append(norm)
            if why is not None and layer not in self._exploded:
                self._exploded.add(layer)
                msg = f"{layer}: gradient norm {norm:.3g} is exploding ({why})"
                self._emit(Finding(step, epoch, "exploding", "warning", msg, layer, value=norm))

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
        self._emit(diagnose(self.model, step, epoch, bad, every, replay, rng, action))
        if replay is not None and self.run_dir is not None:
            save_batch(self.run_dir / f"nonfinite-step{step}.pt", self.model, step, replay.batch)
        return skip

    # -- as an observer of the training loop --------------------------------------------
    def _sentinel_step(self, step: int) -> bool:
        every = self.config.sentinel_every
        return step == 0 or (every > 0 and step % every == 0)

    def on_train_start(self, state: TrainState) -> None:
        # The loop says when a forward starts: no pre-hook needed on the model (it puts the
        # model's every call on the slow path of Module.__call__: ~1% of a SimpleCNN step).
        self._hooks.remove()
        self._share_total = state.config.clip_grad_norm is not None

    def on_before_forward(self, state: TrainState) -> None:
        self._rng = None
        self._remember_rng(state.model, ())
        if self._sentinel_step(state.step):
            self._sentinel = NonFiniteSentinel(state.model).__enter__()
            self._modules = ModuleAttribution(state.model)

    def on_after_forward(self, state: TrainState) -> None:
        if self._sentinel is not None:
            self._sentinel.__exit__()
            self._sentinel_hit, self._sentinel = self._sentinel.hit, None
        if self._modules is not None:  # sentinel step: also watch the backward pass
            self._modules.remove()
            if state.loss is not None and state.loss.grad_fn is not None:
                self._tracer = BackwardTracer(state.loss, state.model, self._modules, "norm")
            self._modules = None

    def _masked_in_backward(self, state: TrainState) -> None:
        """On a sentinel step: a NaN/Inf gradient inside the graph that no parameter got."""
        assert self._tracer is not None
        self._tracer.remove()
        events, self._tracer = self._tracer.trace.events, None
        if not math.isfinite(self.last_total):
            return  # not masked: the nonfinite finding covers it
        bad = next((e for e in events if any(s and s.nonfinite for s in e.produced)), None)
        if bad is not None:
            msg = (
                f"NaN/Inf gradient appeared in the backward pass at {bad.name} in "
                f"{place(bad.module, module_type(self.model, bad.module))} but was masked "
                "before reaching any parameter"
            )
            finding = Finding(
                state.step, state.epoch, "masked", "warning", msg, bad.module, None, "backward",
                bad.name,
            )  # fmt: skip
            self._emit(finding)

    def on_after_backward(self, state: TrainState) -> None:
        skip = self.check(state.step, state.epoch, state.inputs, state.targets)
        state.grad_norm, self._total = self._total, None
        if self._tracer is not None:
            self._masked_in_backward(state)
        hit = self._sentinel_hit
        if hit is not None and math.isfinite(self.last_total):
            msg = (
                f"NaN/Inf appeared in the forward pass at {hit.op} in "
                f"{place(hit.module, hit.module_type)} but was masked: no parameter gradient is "
                "affected (check where()/masking code)"
            )
            self._emit(
                Finding(
                    state.step, state.epoch, "masked", "warning", msg, hit.module, None,
                    "forward", hit.op,
                )
            )  # fmt: skip
        self._sentinel_hit = None
        if skip:
            state.skip_step = True
            if self.config.on_nonfinite == "stop":
                state.request_stop(f"non-finite gradient at step {state.step}")

    def on_train_end(self, state: TrainState, status: str) -> None:
        self.flush(state.step)
        self.remove()

    def _update_step(self, step: int) -> bool:
        every = self.config.update_every
        return every > 0 and (step + 1) % every == 0

    def on_before_step(self, state: TrainState) -> None:
        if self._update_step(state.step) and not state.skip_step:
            self._before = [p.detach().clone() for _, p in self.named]

    def _update_ratios(self, state: TrainState) -> None:
        """Per layer ||w_after - w_before|| / ||w_before||: how far one step moved it."""
        assert self._before is not None
        after = [p.detach() for _, p in self.named]
        moved = torch.stack(torch._foreach_norm(torch._foreach_sub(after, self._before))).tolist()
        sizes = torch.stack(torch._foreach_norm(self._before)).tolist()
        self._before = None
        names = [name for name, _ in self.named]
        moves = _per_layer(zip(names, moved, strict=True))
        weights = _per_layer(zip(names, sizes, strict=True))
        ratios = {k: v / max(weights[k], 1e-12) for k, v in moves.items()}
        state.extras["update_ratio"] = ratios
        low, high = self.config.update_band
        for layer, ratio in ratios.items():
            if (ratio < low or ratio > high) and ratio > 0 and layer not in self._update_warned:
                self._update_warned.add(layer)
                side = (
                    "large: the lr may be too high" if ratio > high else "small: it barely learns"
                )
                msg = (
                    f"{layer}: one update moved its weights by {ratio:.2g} of their norm "
                    f"({side}; ~1e-3 is typical)"
                )
                self._emit(
                    Finding(
                        state.step - 1,
                        state.epoch,
                        "update_ratio",
                        "warning",
                        msg,
                        layer,
                        value=ratio,
                    )
                )

    def _check_dead(self, state: TrainState) -> None:
        assert self._relus is not None
        for name, dead in self._relus.dead_fractions().items():
            if dead > self.config.dead_relu_fraction:
                msg = (
                    f"{name}: {dead:.0%} of its units never fired in the last "
                    f"{self.config.dead_relu_every} steps (dead ReLUs: lower the lr, check the "
                    "init, or try LeakyReLU)"
                )
                finding = Finding(
                    state.step, state.epoch, "dead_relu", "warning", msg, name, value=dead
                )
                self._emit(finding)

    def on_after_step(self, state: TrainState) -> None:
        if self._relus is not None and state.step % self.config.dead_relu_every == 0:
            self._check_dead(state)
        if self._before is not None:
            self._update_ratios(state)
        if state.step % self.config.log_every != 0:
            return  # the loop logs after this step: put the norms in that line
        state.extras["grad_norm_total"] = self.last_total
        state.extras["skipped_steps"] = self.skipped
        layer_norms = getattr(self, "layer_norms", None)
        if layer_norms:
            state.extras["grad_norm"] = dict(layer_norms)
