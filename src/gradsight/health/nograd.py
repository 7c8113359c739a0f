"""Notice parameters that get no gradient, from the step it starts, one finding per group.

Every step costs nothing new: the monitor already counts the parameters holding a
``.grad``, and only a change in that count (a ``.detach()`` that starts at step 20 with
``zero_grad(set_to_none=True)``) triggers a look at each parameter. At each log interval,
where the per-parameter norms are read anyway, a gradient that is exactly zero after
having been non-zero (the same cut under ``zero_grad(set_to_none=False)``) is found too.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from gradsight.health.findings import Finding
from gradsight.health.naming import summarize

__all__ = ["NoGradWatch"]

_CUT = "a .detach(), torch.no_grad() or an unused branch cuts them off from the loss"


class NoGradWatch:
    """Report parameters without a gradient: frozen (info), cut off or zeroed (warning).

    Args:
        named: the model's ``(name, parameter)`` pairs, in model order.
    """

    def __init__(self, named: list[tuple[str, nn.Parameter]]) -> None:
        self.named = named
        self.every = [n for n, _ in named]
        self._count: int | None = None  # parameters holding a .grad at the previous step
        self._prev: int | None = None  # the previous step seen
        self._looked: int | None = None  # the previous step every parameter was looked at
        self._reported: dict[str, str] = {}  # name -> reason already reported
        self._nonzero: dict[str, int] = {}  # name -> latest logged step its norm was > 0

    def check(
        self, step: int, epoch: int, present: int, norms: dict[str, float] | None = None
    ) -> list[Finding]:
        """Look at the step's gradients; return the new findings.

        Args:
            present: how many parameters hold a ``.grad`` now.
            norms: per-parameter gradient norms, on steps where they were read.
        """
        changed = present != self._count
        exact = changed and self._prev == step - 1  # the previous step had the old count
        self._count, self._prev = present, step
        if not changed and norms is None:
            return []
        missing: dict[str, str] = {}
        for name, p in self.named:
            if p.grad is None:
                missing[name] = "detached" if p.requires_grad else "frozen"
            elif norms is not None and norms.get(name) == 0.0 and name in self._nonzero:
                missing[name] = "zero"
            elif norms is not None and norms.get(name, 0.0) > 0:
                self._nonzero[name] = step
        first, since = self._looked is None, self._looked
        self._looked = step
        for name in [n for n in self._reported if n not in missing]:
            del self._reported[name]  # it gets a gradient again: report a new cut anew
        new = {n: r for n, r in missing.items() if self._reported.get(n) != r}
        self._reported.update(new)
        return [
            self._finding(step, epoch, reason, [n for n in self.every if new.get(n) == reason],
                          first, exact, since)
            for reason in ("detached", "zero", "frozen") if reason in new.values()
        ]  # fmt: skip

    def _finding(
        self, step: int, epoch: int, reason: str, names: list[str], first: bool, exact: bool,
        since: int | None,
    ) -> Finding:  # fmt: skip
        who = summarize(names, self.every)
        verb = "is" if len(names) == 1 else "are"
        if first:
            when = ""
        elif exact:
            when = f" from step {step} on"
        else:
            when = f" from a step after {since} on (seen at step {step})"
        if reason == "frozen":
            msg = f"{who} {verb} frozen (requires_grad=False){when}: no gradient, by design"
            param = names[0]
        elif reason == "detached":
            msg = f"{who} got no gradient{when}: detached ({_CUT})"
            param = names[-1]  # the last one in model order: nearest the cut
        else:
            last = max(self._nonzero[n] for n in names)
            msg = (
                f"{who} got exactly zero gradients at step {step} (non-zero at step {last}): "
                f"{_CUT}, and zero_grad(set_to_none=False) leaves a zero .grad"
            )
            param = names[-1]
        severity = "info" if reason == "frozen" else "warning"
        layer = param.rpartition(".")[0] or param
        return Finding(step, epoch, "no_grad", severity, msg, layer, param, params=tuple(names))

    def state_dict(self) -> dict[str, Any]:
        """Plain values for a checkpoint."""
        return {
            "count": self._count,
            "prev": self._prev,
            "looked": self._looked,
            "reported": dict(self._reported),
            "nonzero": dict(self._nonzero),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved."""
        self._count, self._prev, self._looked = state["count"], state["prev"], state["looked"]
        self._reported = dict(state["reported"])
        self._nonzero = {k: int(v) for k, v in state["nonzero"].items()}
