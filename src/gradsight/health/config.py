"""The monitor's thresholds and policies, one frozen dataclass."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from gradsight.config import TrainConfig, check_nonfinite_policy
from gradsight.errors import ConfigError

__all__ = ["MonitorConfig", "ends_interval"]


def ends_interval(step: int, every: int) -> bool:
    """Whether step ``step`` (0-based) is the last of an interval of ``every`` steps, as
    the loop counts them (it logs once ``step + 1`` steps are done); never for 0.

    >>> [s for s in range(7) if ends_interval(s, 3)]
    [2, 5]
    """
    return every > 0 and (step + 1) % every == 0


@dataclass(frozen=True)
class MonitorConfig:
    """Thresholds and policies of :class:`~gradsight.health.monitor.GradMonitor`.

    Raises:
        ConfigError: an unknown policy or a bad ``check_every``.
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
    scaler_patience: int = 10  # GradScaler: report this many skipped steps in a row

    def __post_init__(self) -> None:
        check_nonfinite_policy(self.on_nonfinite, self.check_every)
        patience = self.scaler_patience
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ConfigError(
                f"scaler_patience must be an integer >= 1, got {self.scaler_patience!r}"
            )

    @classmethod
    def of(cls, config: TrainConfig, **overrides: Any) -> MonitorConfig:
        """The monitor a training config asks for: its NaN/Inf policy and check interval,
        log interval and dead-ReLU watch; ``overrides`` set other thresholds.

        >>> MonitorConfig.of(TrainConfig(on_nonfinite="warn", log_every=5)).log_every
        5
        """
        mapped = cls(
            on_nonfinite=config.on_nonfinite,
            log_every=config.log_every,
            check_every=config.nonfinite_check_every,
            dead_relu=config.watch_dead_relu,
        )
        return replace(mapped, **overrides)
