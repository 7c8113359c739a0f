"""Checks of what changes between ``model.train()`` and ``model.eval()``: dropout and
batch-norm layers, the mode the model is in, and batch norm on tiny batches."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.dropout import _DropoutNd
from torch.nn.modules.instancenorm import _InstanceNorm

from gradsight.preflight.activations import names
from gradsight.preflight.guard import preserved
from gradsight.preflight.result import Check

__all__ = ["check_batchnorm_batch", "check_train_eval", "mode_layers"]

#: Batch-norm batches below this give noisy statistics (Wu & He, Group Normalization, 2018).
SMALL_BATCH = 8


def mode_layers(model: nn.Module) -> dict[str, list[str]]:
    """The modules that compute differently in train and eval mode, by kind."""
    found: dict[str, list[str]] = {"dropout": [], "batchnorm": []}
    for name, m in model.named_modules():
        if isinstance(m, (_DropoutNd, nn.AlphaDropout)):
            found["dropout"].append(name)
        elif isinstance(m, _BatchNorm) or (isinstance(m, _InstanceNorm) and m.track_running_stats):
            found["batchnorm"].append(name)
    return found


def _eval_output(model: nn.Module, inputs: Tensor) -> Tensor | None:
    with preserved(model), torch.no_grad():
        model.eval()
        try:
            out = model(inputs)
        except Exception:  # the train-mode pass worked; an eval-only failure is for train_eval
            return None
    return out if isinstance(out, Tensor) else None


def check_train_eval(model: nn.Module, inputs: Tensor, train_out: Tensor, training: bool) -> Check:
    """Measure how far eval-mode outputs are from train-mode ones, and name the layers
    responsible; warn when the model, or some of those layers, would train in eval mode.

    Args:
        training: the model's own mode when it was handed to the check.
    """
    name = "train_eval"
    layers = mode_layers(model)
    listed = [n for kind in layers.values() for n in kind]
    eval_out = _eval_output(model, inputs)
    if eval_out is None:
        return Check(
            name,
            "fail",
            "error",
            "The forward pass fails in eval mode although it runs in train mode.",
            "Run model.eval(); model(x) to see the error.",
        )
    diff = float((train_out - eval_out).double().norm() / (eval_out.double().norm() + 1e-12))
    details = {**layers, "relative_difference": diff}
    counts = f"{len(layers['dropout'])} dropout and {len(layers['batchnorm'])} batch-norm layers"
    modules = dict(model.named_modules())
    stray = [n for n in listed if modules[n].training != training]
    if listed and not training:
        return Check(
            name, "warn", diff, f"The model is in eval mode, so its {counts} would train as "
            "in evaluation (no dropout, frozen running statistics).",
            "Call model.train() before training and model.eval() before evaluating.", details,
        )  # fmt: skip
    if stray:
        return Check(
            name, "warn", diff, f"{names(stray)} {'is' if len(stray) == 1 else 'are'} in eval "
            "mode while the model trains: no dropout there, or batch-norm statistics frozen.",
            "Call model.train() on the whole model; ignore this if freezing them is on purpose.",
            details,
        )  # fmt: skip
    if not listed:
        extra = " (a `self.training` branch in forward?)" if diff > 1e-6 else ""
        return Check(name, "pass", diff, f"No dropout or batch-norm layers; train and eval "
                     f"outputs differ by {diff:.1%}{extra}.", "", details)  # fmt: skip
    return Check(
        name, "pass", diff, f"{counts} make eval outputs differ from train ones by {diff:.0%} "
        "at init, as they should.", "Evaluate under model.eval() and train under model.train().",
        details,
    )  # fmt: skip


def check_batchnorm_batch(model: nn.Module, sizes: list[int], last_batch: int | None) -> Check:
    """Batch norm needs several samples per batch, the last batch of an epoch included.

    Args:
        sizes: the sizes of the batches seen, the configured batch size first.
        last_batch: the size of an epoch's last batch, when known.
    """
    name = "batchnorm_batch"
    norms = [n for n, m in model.named_modules() if isinstance(m, _BatchNorm)]
    smallest = min([*sizes, *([last_batch] if last_batch else [])])
    if not norms:
        return Check(name, "pass", smallest, "No batch-norm layers; any batch size works.")
    details = {"batchnorm": norms, "batch_size": sizes[0], "last_batch": last_batch}
    fix = ("Use a batch size of 16 or more, drop_last=True for the last batch, or GroupNorm/"
           "LayerNorm, which do not depend on the batch.")  # fmt: skip
    if sizes[0] == 1:
        return Check(name, "fail", 1, f"Batch size 1 with batch norm ({names(norms)}): each "
                     "sample is normalised by itself (BatchNorm1d raises), so the layer learns "
                     "nothing and eval statistics are wrong.", fix, details)  # fmt: skip
    if smallest == 1:
        return Check(name, "warn", 1, "An epoch's last batch holds 1 sample: batch norm "
                     "raises (BatchNorm1d) or normalises it by itself there.", fix,
                     details)  # fmt: skip
    if sizes[0] < SMALL_BATCH:
        return Check(name, "warn", sizes[0], f"Batch size {sizes[0]} gives batch norm noisy "
                     f"statistics (below {SMALL_BATCH} it degrades quickly).", fix,
                     details)  # fmt: skip
    return Check(name, "pass", smallest, f"Batches of {smallest}+ samples give batch norm "
                 "stable statistics.", "", details)  # fmt: skip
