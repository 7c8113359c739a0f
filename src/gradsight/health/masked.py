"""Masked NaN/Inf: born in the forward or backward pass, but never reaching a parameter's
gradient (a ``where`` or a ReLU hid it). Checked on sentinel steps only: the first step,
then every N, because watching every op and every backward node costs a full pass."""

from __future__ import annotations

from torch import Tensor, nn

from gradsight.autograd.attribution import ModuleAttribution, module_type
from gradsight.autograd.trace import BackwardTracer
from gradsight.health.findings import Finding
from gradsight.health.naming import place
from gradsight.health.sentinel import NonFiniteSentinel, SentinelHit

__all__ = ["MaskedWatch"]


class MaskedWatch:
    """The forward sentinel and a norm-only backward trace, around one sentinel step.

    Args:
        every: steps between sentinel steps (0: the first step only).
    """

    def __init__(self, every: int) -> None:
        self.every = every
        self._sentinel: NonFiniteSentinel | None = None
        self._modules: ModuleAttribution | None = None
        self._tracer: BackwardTracer | None = None
        self._hit: SentinelHit | None = None

    @property
    def active(self) -> bool:
        """Whether this step is being watched (its NaN/Inf flag must be read now)."""
        return self._tracer is not None or self._hit is not None

    def before_forward(self, model: nn.Module, step: int) -> None:
        """Start watching when ``step`` is a sentinel step."""
        if step == 0 or (self.every > 0 and step % self.every == 0):
            self._sentinel = NonFiniteSentinel(model).__enter__()
            self._modules = ModuleAttribution(model)

    def after_forward(self, model: nn.Module, loss: Tensor | None) -> None:
        """Keep the forward's first unintended NaN/Inf birth; hook the backward pass."""
        if self._sentinel is not None:
            self._sentinel.__exit__()
            self._hit, self._sentinel = self._sentinel.hit, None
        if self._modules is not None:
            self._modules.remove()
            if loss is not None and loss.grad_fn is not None:
                self._tracer = BackwardTracer(loss, model, self._modules, "norm")
            self._modules = None

    def after_backward(
        self, model: nn.Module, step: int, epoch: int, finite: bool
    ) -> list[Finding]:
        """The masked findings of the watched step; ``finite``: whether every parameter's
        gradient was (else the nonfinite finding covers it)."""
        found: list[Finding] = []
        if self._tracer is not None:
            self._tracer.remove()
            events, self._tracer = self._tracer.trace.events, None
            bad = next((e for e in events if any(s and s.nonfinite for s in e.produced)), None)
            if finite and bad is not None:
                msg = (
                    f"NaN/Inf gradient appeared in the backward pass at {bad.name} in "
                    f"{place(bad.module, module_type(model, bad.module))} but was masked "
                    "before reaching any parameter"
                )
                found.append(Finding(step, epoch, "masked", "warning", msg, bad.module, None,
                                     "backward", bad.name))  # fmt: skip
        hit, self._hit = self._hit, None
        if finite and hit is not None:
            msg = (
                f"NaN/Inf appeared in the forward pass at {hit.op} in "
                f"{place(hit.module, hit.module_type)} but was masked: no parameter gradient is "
                "affected (check where()/masking code)"
            )
            found.append(Finding(step, epoch, "masked", "warning", msg, hit.module, None,
                                 "forward", hit.op))  # fmt: skip
        return found

    def remove(self) -> None:
        """Take off every hook and mode still on (a run that ended mid-step)."""
        for hooks in (self._modules, self._tracer):
            if hooks is not None:
                hooks.remove()
        if self._sentinel is not None:
            self._sentinel.__exit__()
        self._sentinel = self._modules = self._tracer = None
