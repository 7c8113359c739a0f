"""``gradsight.check``: run every pre-training check on a model and its data, leaving both
exactly as they were."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gradsight.errors import ConfigError
from gradsight.preflight.activations import (
    check_activation_scale,
    check_dead_relu,
    check_saturation,
)
from gradsight.preflight.config import CheckConfig
from gradsight.preflight.data_checks import check_class_balance, check_input_stats, check_labels
from gradsight.preflight.gradients import check_grad_ratio, check_missing_grad
from gradsight.preflight.guard import device_of
from gradsight.preflight.inputs import CheckInputs, take_batches
from gradsight.preflight.lr_range import check_lr_range, lr_sweep
from gradsight.preflight.modes import check_batchnorm_batch, check_train_eval
from gradsight.preflight.output_checks import check_initial_loss, check_logits, check_output_shape
from gradsight.preflight.overfit import check_overfit
from gradsight.preflight.probe import LossFn, run_probe
from gradsight.preflight.result import Check, CheckReport
from gradsight.rng import capture_rng, restore_rng
from gradsight.train.setup import Prepared

__all__ = ["check", "check_prepared", "run_checks"]


def _config(config: CheckConfig | None, settings: dict[str, Any]) -> CheckConfig:
    config = config or CheckConfig()
    names = {f.name for f in dataclasses.fields(CheckConfig)}
    unknown = sorted(set(settings) - names)
    if unknown:
        raise ConfigError(f"unknown check settings {unknown}; valid: {sorted(names)}")
    return dataclasses.replace(config, **settings)


def check(
    model: nn.Module,
    batches: Iterable[Any],
    loss_fn: LossFn | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    test_batches: Iterable[Any] | None = None,
    config: CheckConfig | None = None,
    **settings: Any,
) -> CheckReport:
    """Run the checks an expert runs before training, and return their verdicts.

    Data (input statistics, labels, class balance), outputs (shape, logits or
    probabilities, the first loss against ln(C)), activations and gradients at
    initialisation, overfitting one small batch, an lr range test, and train/eval
    differences. The model, its buffers, gradients and train/eval mode, the optimizer and
    every random generator are left as they were: the overfit and lr tests train copies.

    Args:
        model: a classifier returning (batch, classes) logits.
        batches: ``(inputs, targets)`` pairs, e.g. a DataLoader; the first
            ``config.max_batches`` are read.
        loss_fn: ``loss_fn(outputs, targets) -> loss``; default cross-entropy.
        optimizer: yours, for its class, settings and lr (only copies are stepped).
        test_batches: test ``(inputs, targets)``, to compare the class balance with.
        config: how hard to look; ``**settings`` override its fields
            (``overfit_steps=50``, ``lr_steps=60``).

    Returns:
        A :class:`CheckReport`; ``report.ok`` is False when a check failed.

    Raises:
        ConfigError: no batches, batches that are not pairs of tensors, a bad setting.

    >>> import torch, gradsight
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    >>> x, y = torch.randn(32, 4), torch.arange(32) % 3
    >>> report = gradsight.check(model, [(x, y)], overfit_steps=20, lr_steps=20)
    >>> report["output_shape"].value, report["logits"].status
    ('[32, 3]', 'pass')
    """
    config = _config(config, settings)
    device = device_of(model)
    taken = take_batches(batches, config.max_batches, device)
    test = take_batches(test_batches, config.max_batches, device) if test_batches else None
    inputs = CheckInputs(
        model, taken, loss_fn or F.cross_entropy, optimizer, config,
        train_labels=torch.cat([y for _, y in taken]),
        test_labels=torch.cat([y for _, y in test]) if test else None,
    )  # fmt: skip
    return run_checks(inputs)


def check_prepared(prepared: Prepared, config: CheckConfig | None = None) -> CheckReport:
    """Run :func:`check` on what ``gradsight train`` would train: the prepared model,
    optimizer and data (every train and test label, and the epoch's last batch, included).

    The batches come shuffled by a generator of their own, so the global random state, and
    so a training run that follows, is the same as without the checks.
    """
    config = config or CheckConfig()
    batch_size, train, test = prepared.config.batch_size, prepared.data.train, prepared.data.test
    order = torch.Generator().manual_seed(prepared.config.seed)
    stream = train.batches(batch_size, shuffle=True, generator=order, device=prepared.device)
    taken = take_batches(stream, config.max_batches, prepared.device)
    model = prepared.model  # under torchrun, the module DDP wraps: no collective runs
    if isinstance(model, nn.parallel.DistributedDataParallel):
        model = model.module
    test_taken = take_batches(
        test.batches(batch_size, shuffle=False), config.max_batches, prepared.device
    )
    inputs = CheckInputs(
        model, taken, F.cross_entropy, prepared.optimizer, config,
        train_labels=_labels(train, taken), test_labels=_labels(test, test_taken),
        last_batch=len(train) % batch_size or None, lr=prepared.config.lr,
    )  # fmt: skip
    return run_checks(inputs)


def _labels(split: object, taken: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Every label of an in-memory split, else those of the batches read."""
    labels = getattr(split, "labels", None)
    return labels if isinstance(labels, torch.Tensor) else torch.cat([y for _, y in taken])


def run_checks(inputs: CheckInputs) -> CheckReport:
    """Run every check on ``inputs``; the global random state is put back afterwards."""
    start, rng = time.perf_counter(), capture_rng()
    try:
        checks = _all_checks(inputs)
    finally:
        restore_rng(rng)
    return CheckReport(tuple(checks), time.perf_counter() - start)


def _all_checks(inputs: CheckInputs) -> list[Check]:
    model, kind, config = inputs.model, inputs.loss_kind, inputs.config
    training = model.training  # before any check switches modes
    x, y = inputs.probe_batch()
    probe = run_probe(model, x, y, inputs.loss_fn)
    shape = check_output_shape(probe, kind)
    out = probe.output
    classes = out.shape[1] if shape.status == "pass" and out is not None and out.dim() > 1 else None
    checks = [
        check_input_stats([b[0] for b in inputs.batches]),
        check_labels(inputs.train_labels, classes, kind),
        check_class_balance(inputs.train_labels, inputs.test_labels, classes),
        shape,
    ]
    if out is None or shape.status == "fail":
        return checks  # nothing below can run without an output
    checks += [
        check_logits(probe, kind),
        check_initial_loss(probe, kind),
        check_dead_relu(probe.layers),
        check_saturation(probe.layers),
        check_activation_scale(probe.layers),
        check_missing_grad(probe.params, model, inputs.optimizer),
        check_grad_ratio(probe.params),
        check_train_eval(model, x, out, training),
        check_batchnorm_batch(model, [len(t) for _, t in inputs.batches], inputs.last_batch),
    ]
    if probe.loss is None:
        return checks  # the loss raises: training cannot run either
    suspects = [c for c in checks if c.status != "pass"]
    n = min(config.overfit_samples, len(inputs.batches[0][1]))
    checks.append(check_overfit(model, x[:n], y[:n], inputs.loss_fn, config, suspects))
    checks.append(_lr_check(inputs))
    return checks


def _lr_check(inputs: CheckInputs) -> Check:
    config, lr = inputs.config, inputs.configured_lr
    if lr is not None and 3 * lr > config.lr_max:  # the sweep must reach past the configured lr
        config = dataclasses.replace(config, lr_max=3 * lr)
    try:
        sweep = lr_sweep(inputs.model, inputs.batches, inputs.loss_fn, inputs.optimizer, config)
    except Exception as exc:  # an uncopyable model, no trainable parameter, a failing step
        return Check(
            "lr_range",
            "warn",
            "error",
            f"The lr range test could not run: {exc!r}.",
            "Fix the checks that failed first (missing_grad, output_shape).",
        )
    return check_lr_range(sweep, inputs.configured_lr)
