"""What makes a run fast, each an option of :class:`~gradsight.config.TrainConfig`: mixed
precision (``amp``), ``torch.compile`` (``compile``), channels-last memory (``channels_last``)
and a learning-rate schedule (``lr_schedule``, ``warmup_epochs``)."""

from __future__ import annotations

import contextlib
import math
import platform
import shutil
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR

from gradsight.config import TrainConfig
from gradsight.errors import ConfigError

__all__ = [
    "autocast",
    "build_scheduler",
    "check_speed_options",
    "compile_model",
    "grad_scaler",
    "memory_format",
]

_AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_speed_options(config: TrainConfig, device: torch.device) -> None:
    """Refuse, in one line, a speed option this device or machine cannot run.

    Raises:
        ConfigError: fp16 off CUDA, bf16 on a GPU without it, ``--compile`` without a C++
            compiler on the CPU or on Windows.
    """
    if config.amp == "fp16" and device.type != "cuda":
        raise ConfigError(
            f"--amp fp16 needs a CUDA GPU (with a GradScaler), not {device.type}; "
            "use --amp bf16 on the CPU"
        )
    if config.amp == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError("--amp bf16: this GPU has no bfloat16 support; use --amp fp16")
    if config.amp != "off" and device.type == "mps":
        raise ConfigError(f"--amp {config.amp} is not supported on mps here; use --amp off")
    if config.compile:
        if platform.system() == "Windows":
            raise ConfigError("--compile: torch.compile does not run on Windows; drop --compile")
        if device.type == "cpu" and not any(shutil.which(c) for c in ("g++", "c++", "clang++")):
            raise ConfigError(
                "--compile needs a C++ compiler for torch.compile on the CPU "
                "(Debian/Ubuntu: apt-get install g++); or drop --compile"
            )


def autocast(config: TrainConfig, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """``torch.autocast`` in the run's ``amp`` dtype; a no-op context with ``amp="off"``
    (entered every step: a plain object, not a generator, keeps that cheap)."""
    if config.amp == "off":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=_AMP_DTYPES[config.amp])


def grad_scaler(config: TrainConfig, device: torch.device) -> torch.amp.GradScaler | None:
    """A GradScaler for fp16 (whose small gradients would underflow); None otherwise."""
    return torch.amp.GradScaler(device.type) if config.amp == "fp16" else None


def memory_format(x: Tensor, config: TrainConfig) -> Tensor:
    """A batch of images (B, C, H, W) in channels-last memory when the run asks for it."""
    if config.channels_last and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def compile_model(model: nn.Module, config: TrainConfig) -> nn.Module:
    """``model`` in channels-last memory and/or ``torch.compile``d, as the run asks."""
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if config.compile:
        model = torch.compile(model)  # type: ignore[assignment]
    return model


def build_scheduler(
    config: TrainConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int
) -> LRScheduler | None:
    """The learning-rate schedule, stepped once per optimizer step; None for ``none``.

    ``cosine``: linear warm-up from 0 over ``warmup_epochs``, then cosine decay to 0 at the
    last step. ``onecycle``: ``OneCycleLR`` peaking at ``lr`` (its warm-up is
    ``warmup_epochs`` when set, else 30% of the run).

    >>> model = nn.Linear(2, 2)
    >>> opt = torch.optim.SGD(model.parameters(), lr=1.0)
    >>> cfg = TrainConfig(lr_schedule="cosine", warmup_epochs=1, epochs=3)
    >>> sched = build_scheduler(cfg, opt, steps_per_epoch=2)
    >>> lrs = []
    >>> for _ in range(6):
    ...     lrs.append(round(opt.param_groups[0]["lr"], 3))
    ...     opt.step()
    ...     sched.step()
    >>> lrs
    [0.0, 0.5, 1.0, 0.854, 0.5, 0.146]
    """
    total = max(config.epochs * steps_per_epoch, 1)
    warmup = round(config.warmup_epochs * steps_per_epoch)
    if config.lr_schedule == "none":
        return None
    if config.lr_schedule == "onecycle":
        pct = min(max(warmup / total, 0.01), 0.99) if warmup else 0.3
        return OneCycleLR(optimizer, max_lr=config.lr, total_steps=total, pct_start=pct)

    def factor(step: int) -> float:
        if step < warmup:
            return step / warmup
        done = (step - warmup) / max(total - warmup, 1)
        return 0.5 * (1.0 + math.cos(math.pi * min(done, 1.0)))

    return LambdaLR(optimizer, factor)
