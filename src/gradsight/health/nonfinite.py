"""The monitor's ``nonfinite`` finding: which batch to replay, where the NaN/Inf was born, and
the batch and weights saved to reproduce it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from gradsight.autograd.attribution import unwrap
from gradsight.errors import ConfigError
from gradsight.health.birthplace import Birthplace, LossFn, RngState, locate_nonfinite
from gradsight.health.findings import Finding
from gradsight.health.naming import nearest, summarize
from gradsight.train.loop import one_line

__all__ = [
    "Replay",
    "check_replay_args",
    "compiled_note",
    "diagnose",
    "late_note",
    "replay_of",
    "save_batch",
]

_COMPILED = (
    "the model is torch.compile'd: the backward of each compiled region is one autograd node "
    "(CompiledFunctionBackward), so traces and graphs show it as one step; a NaN/Inf is "
    "located by replaying the step eagerly"
)


def late_note(first: int, epoch: int, now: int, every: int, policy: str) -> Finding:
    """The finding for a NaN/Inf flag set at step ``first``, read only at step ``now``
    (the flag read every ``every`` steps), under the ``stop`` or ``warn`` policy."""
    msg = (
        f"NaN/Inf gradient at step {first}, read at step {now}: the flag is read every "
        f"{every} steps, so the updates of steps {first}..{now - 1} may have used it; rerun "
        "with --nonfinite-check-every 1 to name where it was born; "
        + ("stopping" if policy == "stop" else "continuing")
    )
    return Finding(first, epoch, "nonfinite", "error", msg)


def compiled_note(step: int, epoch: int) -> Finding:
    """The ``compiled`` info finding: what a compiled model changes in traces and replays."""
    return Finding(step, epoch, "compiled", "info", _COMPILED)


@dataclass(frozen=True)
class Replay:
    """What a replay of the failing step runs: ``loss_fn(model, batch)``."""

    loss_fn: LossFn
    batch: Any


def _cross_entropy(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
    """The loss of the ``inputs=``/``targets=`` shortcut."""
    return nn.functional.cross_entropy(model(batch["inputs"]), batch["targets"])


def check_replay_args(loss_fn: LossFn | None, inputs: Tensor | None, batch: Any) -> None:
    """Raise now what :func:`replay_of` would raise, without building the replay.

    Raises:
        ConfigError: ``batch`` without a ``loss_fn``, or both ``batch`` and ``inputs``.
    """
    if batch is None:
        return
    if inputs is not None:
        raise ConfigError("check() takes batch= or inputs=/targets=, not both; pass batch=")
    if loss_fn is None:
        raise ConfigError(
            "check(batch=...) needs GradMonitor(model, loss_fn=...) to replay the loss; "
            "or pass inputs= and targets= for cross-entropy on a tensor output"
        )


def replay_of(
    loss_fn: LossFn | None, inputs: Tensor | None, targets: Tensor | None, batch: Any
) -> Replay | None:
    """The replay :meth:`GradMonitor.check`'s arguments make, or None without a batch.

    Raises:
        ConfigError: as :func:`check_replay_args`.
    """
    check_replay_args(loss_fn, inputs, batch)
    if batch is not None and loss_fn is not None:
        return Replay(loss_fn, batch)
    if inputs is not None and targets is not None:
        return Replay(loss_fn or _cross_entropy, {"inputs": inputs, "targets": targets})
    return None


def diagnose(
    model: nn.Module, step: int, epoch: int, bad: list[str], every: list[str],
    replay: Replay | None, rng: RngState | None, action: str,
) -> Finding:  # fmt: skip
    """The ``nonfinite`` finding for parameters ``bad`` (of ``every``), with where the
    NaN/Inf was born when ``replay`` is given. A ``loss_fn`` that fails in the replay is
    reported in the finding, not raised: the user's loop goes on."""
    who = summarize(bad, every) if bad else "the gradients"
    if replay is None:
        msg = f"NaN/Inf gradient in {who}; pass the batch to check() to learn where it was born"
        first = bad[0] if bad else None
        return Finding(step, epoch, "nonfinite", "error", f"{msg}; {action}", param=first,
                       params=tuple(bad))  # fmt: skip
    try:
        born = locate_nonfinite(model, replay.batch, replay.loss_fn, rng)
    except Exception as exc:  # whatever the user's loss_fn raised
        why = one_line(exc, 120)
        born = Birthplace(None, None, None, f"the replay failed ({why})")
    param = born.params[0] if born.params else nearest(bad, born.module)
    msg = f"NaN/Inf gradient in {who}; {born.where}; {action}"
    return Finding(step, epoch, "nonfinite", "error", msg, born.module, param, born.phase,
                   born.op, params=tuple(bad))  # fmt: skip


def _to_cpu(value: Any) -> Any:
    """``value`` with every tensor inside (tuples, lists, dicts) detached and on the CPU."""
    if isinstance(value, Tensor):
        return value.detach().cpu()
    if isinstance(value, list):
        return [_to_cpu(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_to_cpu(v) for v in value)
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    return value


def save_batch(path: Path, model: nn.Module, step: int, batch: Any) -> None:
    """Save the failing batch and the model's weights to ``path`` (``torch.save``), so the
    step can be reproduced: ``{"step", "batch", "state"}``, and ``inputs``/``targets`` for
    the shortcut's batch."""
    state = {k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()}
    payload = {"step": step, "batch": _to_cpu(batch), "state": state}
    if isinstance(batch, dict) and set(batch) == {"inputs", "targets"}:
        payload.update(_to_cpu(batch))
    torch.save(payload, path)
