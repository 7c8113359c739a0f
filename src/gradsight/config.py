"""The run configuration: one frozen dataclass, saved into every run folder."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gradsight.errors import ConfigError

__all__ = [
    "AMP_MODES",
    "LR_SCHEDULES",
    "NONFINITE_POLICIES",
    "OPTIMIZERS",
    "TrainConfig",
    "check_nonfinite_policy",
]

#: Optimizers ``TrainConfig.optimizer`` accepts.
OPTIMIZERS = ("sgd", "adam")

#: Mixed precision (``--amp``): off, bfloat16 autocast, float16 autocast with a GradScaler.
AMP_MODES = ("off", "bf16", "fp16")

#: Learning-rate schedules (``--lr-schedule``), stepped once per optimizer step.
LR_SCHEDULES = ("none", "cosine", "onecycle")


#: What to do with a NaN/Inf gradient (``--on-nonfinite``): skip the update and stop the run,
#: skip the update and go on, or only warn.
NONFINITE_POLICIES = ("stop", "skip", "warn")


def check_nonfinite_policy(on_nonfinite: str, every: int) -> None:
    """Validate ``--on-nonfinite`` and ``--nonfinite-check-every`` (a positive int, and 1 for
    the skip policy, which must decide before every update).

    Raises:
        ConfigError: with the bad value and the fix.
    """
    if on_nonfinite not in NONFINITE_POLICIES:
        raise ConfigError(
            f"invalid --on-nonfinite '{on_nonfinite}'. Valid policies: "
            f"{', '.join(NONFINITE_POLICIES)}"
        )
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ConfigError(f"--nonfinite-check-every must be an integer >= 1, got {every!r}")
    if every > 1 and on_nonfinite == "skip":
        raise ConfigError(
            f"--on-nonfinite skip must read the NaN/Inf flag before every update, but "
            f"--nonfinite-check-every is {every}; use 1, or --on-nonfinite stop/warn"
        )


def _require_positive(name: str, value: float, flag: str) -> None:
    if not value > 0:
        raise ConfigError(f"{flag} must be positive, got {value!r}")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides what a training run computes.

    The defaults are the article's: SGD with lr 0.01, batch size 64, CrossEntropyLoss, on
    the bundled Fashion-MNIST subset. Two runs with the same config on the same device and
    library versions write the same ``metrics.jsonl`` values.

    Raises:
        ConfigError: a value is out of range (non-positive lr, batch size, epochs...).
    """

    dataset: str = "fashion-mnist-mini"
    data_dir: str | None = None
    download: bool | None = None  # None: download into the cache only when data_dir is unset
    image_size: int | None = None  # only for folder: and synthetic datasets
    skip_bad_images: bool = False  # folder: only; leave unreadable image files out, warning each
    model: str = "simple"
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.0
    weight_decay: float = 0.0
    batch_size: int = 64
    epochs: int = 3
    seed: int = 42
    device: str = "auto"
    log_every: int = 20  # steps between metric syncs and step records
    deterministic: bool = False  # deterministic kernels only (see train.setup)
    clip_grad_norm: float | None = None  # clip the total gradient norm to this before each step
    on_nonfinite: str = "stop"  # NaN/Inf gradient: stop, skip the update, or warn
    nonfinite_check_every: int = 1  # steps between reads of the NaN/Inf flag (device syncs)
    watch_dead_relu: bool = False  # the monitor's forward hooks on every nn.ReLU
    checkpoint_every: int = 0  # also checkpoint every N optimizer steps (0: at epoch ends)
    keep_checkpoints: int = 3  # numbered checkpoints kept besides last.pt
    tensorboard: bool = False  # TensorBoard event files in RUN_DIR/tensorboard
    tensorboard_hist_every: int = 100  # steps between gradient histograms (0: none)
    amp: str = "off"  # mixed precision: off, bf16 (CPU or GPU), fp16 (CUDA, with a GradScaler)
    compile: bool = False  # torch.compile the model
    channels_last: bool = False  # model and batches in channels-last memory
    lr_schedule: str = "none"  # none, cosine (after warmup_epochs), onecycle
    warmup_epochs: float = 0.0  # linear warm-up of the schedule, in epochs

    def __post_init__(self) -> None:
        _require_positive("lr", self.lr, "--lr")
        _require_positive("batch_size", self.batch_size, "--batch-size")
        _require_positive("epochs", self.epochs, "--epochs")
        _require_positive("log_every", self.log_every, "--log-every")
        if self.image_size is not None:
            _require_positive("image_size", self.image_size, "--image-size")
        if self.momentum < 0 or self.weight_decay < 0:
            raise ConfigError(
                f"--momentum and --weight-decay must be >= 0, got {self.momentum!r} "
                f"and {self.weight_decay!r}"
            )
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(
                f"invalid optimizer '{self.optimizer}'. Valid optimizers: {', '.join(OPTIMIZERS)}"
            )
        if self.clip_grad_norm is not None:
            _require_positive("clip_grad_norm", self.clip_grad_norm, "--clip-grad-norm")
        check_nonfinite_policy(self.on_nonfinite, self.nonfinite_check_every)
        if self.tensorboard_hist_every < 0:
            raise ConfigError(
                f"--tensorboard-hist-every must be >= 0, got {self.tensorboard_hist_every}"
            )
        if self.amp not in AMP_MODES:
            raise ConfigError(f"invalid --amp '{self.amp}'. Valid modes: {', '.join(AMP_MODES)}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(
                f"invalid --lr-schedule '{self.lr_schedule}'. Valid schedules: "
                f"{', '.join(LR_SCHEDULES)}"
            )
        if not 0 <= self.warmup_epochs < self.epochs:
            raise ConfigError(
                f"--warmup-epochs must be >= 0 and below --epochs {self.epochs}, got "
                f"{self.warmup_epochs!r}"
            )
        if self.warmup_epochs and self.lr_schedule == "none":
            raise ConfigError("--warmup-epochs needs --lr-schedule cosine or onecycle")
        if self.momentum and self.optimizer != "sgd":
            raise ConfigError(f"--momentum applies to sgd only, not '{self.optimizer}'")

    def to_dict(self) -> dict[str, Any]:
        """Return the config as a JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build a config from :meth:`to_dict` output; unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"unknown config keys {unknown}; valid keys: {sorted(names)}")
        return cls(**data)

    def save(self, path: Path) -> None:
        """Write the config as pretty JSON to ``path``."""
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        """Read a config written by :meth:`save`."""
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
