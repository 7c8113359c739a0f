"""What every check reads: the model, a few batches, the loss, the optimizer, the labels."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from gradsight.errors import ConfigError
from gradsight.preflight.config import CheckConfig
from gradsight.preflight.probe import LossFn, loss_kind

__all__ = ["CheckInputs", "take_batches"]

Batch = tuple[Tensor, Tensor]


def take_batches(batches: Iterable[object], limit: int, device: torch.device) -> list[Batch]:
    """Read at most ``limit`` ``(inputs, targets)`` batches and move them to ``device``.

    Raises:
        ConfigError: no batch, or a batch that is not a pair of tensors.
    """
    taken: list[Batch] = []
    for i, batch in enumerate(itertools.islice(batches, limit)):
        if not (
            isinstance(batch, (tuple, list)) and len(batch) == 2
            and all(isinstance(t, Tensor) for t in batch)
        ):  # fmt: skip
            raise ConfigError(
                f"batch {i} is a {type(batch).__name__}; check() needs batches of "
                "(inputs, targets) tensors, e.g. a DataLoader over (image, label) pairs"
            )
        x, y = batch
        if x.shape[0] != y.shape[0] or x.shape[0] == 0:
            raise ConfigError(
                f"batch {i} has {x.shape[0]} inputs and {y.shape[0]} targets; "
                "give batches with one target per input"
            )
        taken.append((x.to(device), y.to(device)))
    if not taken:
        raise ConfigError("check() got no batches; give an iterable of (inputs, targets)")
    return taken


@dataclass
class CheckInputs:
    """Everything the checks read.

    Attributes:
        model: the user's model (never written; see ``guard``).
        batches: the first batches of the training data, on the model's device.
        loss_fn: ``loss_fn(outputs, targets) -> loss``.
        optimizer: the user's optimizer, or None; only its class and settings are used.
        config: how hard to look.
        train_labels: every training label known (those of ``batches`` if no more).
        test_labels: the test labels, or None.
        last_batch: samples in an epoch's last batch, when known (the CLI knows it).
        lr: the lr training will use, when the optimizer does not hold it yet (a warm-up
            schedule starts lower); default the optimizer's.
    """

    model: nn.Module
    batches: list[Batch]
    loss_fn: LossFn
    optimizer: torch.optim.Optimizer | None
    config: CheckConfig
    train_labels: Tensor
    test_labels: Tensor | None = None
    last_batch: int | None = None
    lr: float | None = None

    @property
    def loss_kind(self) -> str:
        """``cross_entropy``, ``nll`` or ``other``."""
        return loss_kind(self.loss_fn)

    @property
    def configured_lr(self) -> float | None:
        """``lr``, else the optimizer's (of its first parameter group), else None."""
        if self.lr is not None or self.optimizer is None:
            return self.lr
        return float(self.optimizer.param_groups[0]["lr"])

    def probe_batch(self) -> Batch:
        """The first batches joined up to ``config.probe_samples`` samples."""
        xs, ys, n = [], [], 0
        for x, y in self.batches:
            xs.append(x)
            ys.append(y)
            n += x.shape[0]
            if n >= self.config.probe_samples:
                break
        k = self.config.probe_samples
        return torch.cat(xs)[:k], torch.cat(ys)[:k]
