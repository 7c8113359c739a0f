"""Exploding and vanishing gradients: the total norm every step, each layer's at log steps."""

from __future__ import annotations

import math
import statistics
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

from gradsight.health.config import MonitorConfig
from gradsight.health.findings import Finding

__all__ = ["MedianWindow", "NormChecks", "layer_of", "per_layer"]


def layer_of(param_name: str) -> str:
    """``layer1.0.conv1.weight`` -> ``layer1.0.conv1`` (a root parameter is its own layer)."""
    return param_name.rpartition(".")[0] or param_name


def per_layer(norms: Iterable[tuple[str, float]]) -> dict[str, float]:
    """Combine per-parameter norms into per-layer norms: sqrt of the sum of squares."""
    squares: dict[str, float] = {}
    for name, norm in norms:
        squares[layer_of(name)] = squares.get(layer_of(name), 0.0) + norm * norm
    return {layer: math.sqrt(sq) for layer, sq in squares.items()}


class MedianWindow:
    """The last ``size`` values (finite numbers), in arrival order and sorted, so the median
    of the window costs no sort: the total norm's is read on every step.

    >>> window = MedianWindow(3, [5.0, 1.0, 4.0])
    >>> window.append(2.0)  # 5.0 leaves
    >>> list(window), window.median()
    ([1.0, 4.0, 2.0], 2.0)
    """

    def __init__(self, size: int, values: Iterable[float] = ()) -> None:
        self._order: deque[float] = deque(maxlen=size)
        self._sorted: list[float] = []
        for value in values:
            self.append(value)

    def append(self, value: float) -> None:
        if len(self._order) == self._order.maxlen:
            del self._sorted[bisect_left(self._sorted, self._order[0])]
        self._order.append(value)
        insort(self._sorted, value)

    def median(self) -> float:
        """The same number as ``statistics.median`` of the window (which must not be empty)."""
        values, half = self._sorted, len(self._sorted) // 2
        return values[half] if len(values) % 2 else (values[half - 1] + values[half]) / 2

    def __len__(self) -> int:
        return len(self._order)

    def __iter__(self) -> Iterator[float]:
        return iter(self._order)


def _explosion(value: float, median: float | None, cfg: MonitorConfig) -> str | None:
    """Why ``value`` is exploding (above the absolute bound, or k x ``median``, the running
    median once enough values were seen), or None when it is not."""
    if value > cfg.explode_norm:
        return f"above {cfg.explode_norm:g}"
    if median is not None and median > 0 and value > cfg.explode_factor * median:
        return f"{value / median:.0f}x its running median {median:.3g}"
    return None


class NormChecks:
    """The running medians and what was reported, for the total norm and each layer's."""

    def __init__(self, config: MonitorConfig) -> None:
        self.config = config
        self.totals = MedianWindow(config.median_window)
        self.layer_norms: dict[str, float] = {}  # of the latest log step
        self._exploding = False
        self._low_counts: dict[str, int] = {}
        self._layer_history: dict[str, deque[float]] = {}
        self._exploded: set[str] = set()
        self._vanished: set[str] = set()

    def total(self, step: int, epoch: int, total: float) -> list[Finding]:
        """Check one step's finite total norm; reported once per exploding stretch."""
        enough = len(self.totals) >= self.config.warmup_steps
        why = _explosion(total, self.totals.median() if enough else None, self.config)
        found = []
        if why is not None and not self._exploding:
            msg = f"total gradient norm {total:.3g} is exploding ({why}); lower the lr or clip"
            found.append(Finding(step, epoch, "exploding", "warning", msg, value=total))
        self._exploding = why is not None
        self.totals.append(total)
        return found

    def layers(
        self, step: int, epoch: int, grads: dict[str, float], weights: dict[str, float]
    ) -> list[Finding]:
        """Check per-layer norms from per-parameter gradient and weight norms."""
        self.layer_norms = per_layer(grads.items())
        weight_norms = per_layer((n, w) for n, w in weights.items() if n in grads)
        found = self._layer_explosions(step, epoch)
        cfg = self.config
        for layer, norm in self.layer_norms.items():
            ratio = norm / max(weight_norms[layer], 1e-12)
            low = ratio < cfg.vanish_ratio
            self._low_counts[layer] = self._low_counts.get(layer, 0) + 1 if low else 0
            if self._low_counts[layer] >= cfg.vanish_checks and layer not in self._vanished:
                self._vanished.add(layer)
                msg = (
                    f"{layer}: gradient is vanishing, ||grad||/||weight|| = {ratio:.2g} below "
                    f"{cfg.vanish_ratio:g} for {cfg.vanish_checks} checks; its weights barely "
                    "move (try ReLU, normalisation or residual connections)"
                )
                found.append(Finding(step, epoch, "vanishing", "warning", msg, layer, value=ratio))
        return found

    def _layer_explosions(self, step: int, epoch: int) -> list[Finding]:
        """Per layer: norm above the absolute threshold, or k x its own running median."""
        cfg, found = self.config, []
        for layer, norm in self.layer_norms.items():
            history = self._layer_history.setdefault(layer, deque(maxlen=cfg.median_window))
            enough = len(history) >= cfg.vanish_checks
            why = _explosion(norm, statistics.median(history) if enough else None, cfg)
            history.append(norm)
            if why is not None and layer not in self._exploded:
                self._exploded.add(layer)
                msg = f"{layer}: gradient norm {norm:.3g} is exploding ({why})"
                found.append(Finding(step, epoch, "exploding", "warning", msg, layer, value=norm))
        return found

    def state_dict(self) -> dict[str, Any]:
        """Plain values for a checkpoint (keys as the monitor has always saved them)."""
        return {
            "totals": list(self.totals),
            "exploding": self._exploding,
            "low_counts": dict(self._low_counts),
            "layer_history": {k: list(v) for k, v in self._layer_history.items()},
            "exploded": sorted(self._exploded),
            "vanished": sorted(self._vanished),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved."""
        window = self.config.median_window
        self.totals = MedianWindow(window, state["totals"])
        self._exploding = bool(state["exploding"])
        self._low_counts = {k: int(v) for k, v in state["low_counts"].items()}
        self._layer_history = {
            k: deque(v, maxlen=window) for k, v in state["layer_history"].items()
        }
        self._exploded, self._vanished = set(state["exploded"]), set(state["vanished"])
