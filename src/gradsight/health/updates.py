"""How far one optimizer step moved each layer: ``||w_after - w_before|| / ||w_before||``."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gradsight.health.findings import Finding
from gradsight.health.norms import per_layer

__all__ = ["UpdateRatios"]


class UpdateRatios:
    """Copy the weights before a chosen step, compare after it; warn outside ``band``."""

    def __init__(self, named: list[tuple[str, nn.Parameter]], band: tuple[float, float]) -> None:
        self.named, self.band = named, band
        self.warned: set[str] = set()
        self._before: list[Tensor] | None = None

    @property
    def pending(self) -> bool:
        """Whether weights were copied before this step's update."""
        return self._before is not None

    def before(self) -> None:
        """Copy the weights now, before the optimizer step."""
        self._before = [p.detach().clone() for _, p in self.named]

    def after(self, step: int, epoch: int) -> tuple[dict[str, float], list[Finding]]:
        """Per-layer ratios of the update just made, and warnings for layers outside the band
        (each layer once)."""
        assert self._before is not None, "before() was not called"
        after = [p.detach() for _, p in self.named]
        moved = torch.stack(torch._foreach_norm(torch._foreach_sub(after, self._before))).tolist()
        sizes = torch.stack(torch._foreach_norm(self._before)).tolist()
        self._before = None
        names = [name for name, _ in self.named]
        moves = per_layer(zip(names, moved, strict=True))
        weights = per_layer(zip(names, sizes, strict=True))
        ratios = {k: v / max(weights[k], 1e-12) for k, v in moves.items()}
        low, high = self.band
        found = []
        for layer, ratio in ratios.items():
            if (ratio < low or ratio > high) and ratio > 0 and layer not in self.warned:
                self.warned.add(layer)
                side = (
                    "large: the lr may be too high" if ratio > high else "small: it barely learns"
                )
                msg = (
                    f"{layer}: one update moved its weights by {ratio:.2g} of their norm "
                    f"({side}; ~1e-3 is typical)"
                )
                found.append(
                    Finding(step, epoch, "update_ratio", "warning", msg, layer, value=ratio)
                )
        return ratios, found
