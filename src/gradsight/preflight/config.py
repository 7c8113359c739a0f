"""The settings of :func:`~gradsight.check`: how much data, how many steps, which thresholds."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from gradsight.errors import ConfigError

__all__ = ["CheckConfig"]


@dataclass(frozen=True)
class CheckConfig:
    """How hard :func:`~gradsight.check` looks; the defaults finish in seconds on a CPU.

    Attributes:
        max_batches: batches read from the data for the statistics and the lr sweep.
        probe_samples: samples in the probe pass (outputs, activations, gradients): batches
            are joined until there are this many.
        overfit_samples: size of the one batch the model must overfit.
        overfit_steps: Adam steps allowed to overfit it (stops early once the loss is low).
        overfit_lr: Adam's learning rate for the overfit test, independent of yours.
        overfit_target: the loss that counts as "close to 0" (about 95% on every sample).
        lr_min, lr_max, lr_steps: the exponential learning-rate sweep; it reaches at least
            3x the configured lr.
    """

    max_batches: int = 8
    probe_samples: int = 64
    overfit_samples: int = 16
    overfit_steps: int = 300
    overfit_lr: float = 3e-3
    overfit_target: float = 0.05
    lr_min: float = 1e-5
    lr_max: float = 10.0
    lr_steps: int = 60

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not value > 0:
                raise ConfigError(f"check setting {f.name} must be positive, got {value!r}")
        if self.lr_max <= self.lr_min:
            raise ConfigError(
                f"lr_max ({self.lr_max}) must be above lr_min ({self.lr_min}) for the lr sweep"
            )
        if self.lr_steps < 10:
            raise ConfigError(
                f"lr_steps must be at least 10 to find a minimum, got {self.lr_steps}"
            )
