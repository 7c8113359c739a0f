"""Find ReLU units that never fire: forward hooks on ReLU modules, OR-ed over a window."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from gradsight.autograd.handles import HookHandle
from gradsight.health.findings import Finding

__all__ = ["DeadReluWatch"]


class DeadReluWatch:
    """Track, per ``nn.ReLU`` module, which output units were ever > 0 since the last reset.

    A unit is one position of the output without the batch dimension (channel x height x
    width for a conv layer). The hooks only read the output. Remove them with ``remove()``.
    """

    def __init__(self, model: nn.Module) -> None:
        self.alive: dict[str, Tensor] = {}
        self._handle = HookHandle(
            m.register_forward_hook(self._make_hook(name))
            for name, m in model.named_modules()
            if isinstance(m, nn.ReLU)
        )

    def _make_hook(self, name: str) -> Any:
        def hook(module: nn.Module, args: Any, output: Tensor) -> None:
            with torch.no_grad():
                fired = (output > 0).flatten(1).any(dim=0)  # (units,)
                seen = self.alive.get(name)
                self.alive[name] = (
                    fired if seen is None or seen.shape != fired.shape else seen.to(fired) | fired
                )  # .to: a window restored from a checkpoint is on the CPU

        return hook

    def dead_fractions(self) -> dict[str, float]:
        """Return, per ReLU module, the fraction of units that never fired; then reset."""
        out = {name: 1.0 - float(alive.double().mean()) for name, alive in self.alive.items()}
        self.alive = {}
        return out

    def findings(self, step: int, epoch: int, window: int, fraction: float) -> list[Finding]:
        """Warn for each ReLU module more than ``fraction`` of whose units never fired in the
        ``window`` steps since the last call; then start a new window."""
        found = []
        for name, dead in self.dead_fractions().items():
            if dead > fraction:
                msg = (
                    f"{name}: {dead:.0%} of its units never fired in the last {window} steps "
                    "(dead ReLUs: lower the lr, check the init, or try LeakyReLU)"
                )
                found.append(Finding(step, epoch, "dead_relu", "warning", msg, name, value=dead))
        return found

    def state_dict(self) -> dict[str, Tensor]:
        """The current window: per module, which units fired so far (CPU bool tensors)."""
        return {name: alive.cpu() for name, alive in self.alive.items()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Restore a window saved by :meth:`state_dict`, so a resumed run counts it whole."""
        self.alive = dict(state)

    def remove(self) -> None:
        self._handle.remove()
