"""Checks of the data alone: input statistics per channel, the labels, the class balance."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from gradsight.preflight.result import Check

__all__ = ["check_class_balance", "check_input_stats", "check_labels"]

#: A channel whose std or |mean| is above this was not normalised (0..255 pixels: ~70, ~90).
RAW_SCALE = 10.0
#: Samples per class below which a class balance is noise, not a measurement.
MIN_PER_CLASS = 20


def _channel_rows(inputs: list[Tensor]) -> Tensor:
    """Inputs as (channels, values): dim 1 is the channel of (B, C, ...) inputs."""
    x = torch.cat([t.detach().float() for t in inputs])
    if x.dim() >= 3:
        return x.transpose(0, 1).reshape(x.shape[1], -1)
    return x.reshape(1, -1)


def _stats_text(mean: list[float], std: list[float], lo: list[float], hi: list[float]) -> str:
    if len(mean) == 1:
        return f"mean {mean[0]:.3g}, std {std[0]:.3g}, range {lo[0]:.3g}..{hi[0]:.3g}"
    return (
        f"{len(mean)} channels: mean {min(mean):.3g}..{max(mean):.3g}, "
        f"std {min(std):.3g}..{max(std):.3g}, range {min(lo):.3g}..{max(hi):.3g}"
    )


def check_input_stats(inputs: list[Tensor]) -> Check:
    """Judge the inputs per channel: NaN/Inf, never normalised, constant channels."""
    name = "input_stats"
    if inputs[0].dtype == torch.uint8:
        return Check(
            name, "fail", "uint8", "The inputs are raw uint8 pixels (0..255), not normalised "
            "floats.",
            "Convert to float and normalise per channel: (x / 255 - mean) / std.",
        )  # fmt: skip
    if not inputs[0].is_floating_point():
        return Check(name, "pass", str(inputs[0].dtype).removeprefix("torch."),
                     "The inputs are integers (indices?); their scale is not judged.")  # fmt: skip
    rows = _channel_rows(inputs)  # (C, N)
    finite = torch.isfinite(rows)
    bad = int((~finite).sum())
    if bad:
        return Check(
            name, "fail", bad, f"{bad} input values are NaN or Inf; every loss and gradient "
            "they touch becomes NaN.", "Find the samples with torch.isfinite(x).all(dim=...) "
            "and fix or drop them, or fix the transform that divides by zero.",
            {"nonfinite": bad},
        )  # fmt: skip
    mean, std = rows.mean(dim=1).tolist(), rows.std(dim=1, correction=0).tolist()
    lo, hi = rows.min(dim=1).values.tolist(), rows.max(dim=1).values.tolist()
    details = {
        "mean": mean,
        "std": std,
        "min": lo,
        "max": hi,
        "samples": sum(len(t) for t in inputs),
    }
    value = _stats_text(mean, std, lo, hi)
    constant = [c for c in range(len(mean)) if hi[c] == lo[c]]
    if max(max(std), max(abs(m) for m in mean)) > RAW_SCALE:
        return Check(
            name, "fail", value, f"The inputs were not normalised (up to {max(hi):.4g}): "
            "activations and gradients start far too large and training diverges or crawls.",
            "Normalise each channel to mean 0 and std 1: (x - mean) / std, with x in 0..1.",
            details,
        )  # fmt: skip
    if constant:
        return Check(
            name, "warn", value, f"Channel(s) {constant} hold one value in every sample seen "
            "and carry no information.", "Check the loader (a wrong channel order or an "
            "all-black channel), or drop the channel.", details,
        )  # fmt: skip
    if max(abs(m) for m in mean) > 1.0 or max(std) > 3.0 or min(std) < 0.1:
        return Check(
            name, "warn", value, "The inputs are not centred and scaled (a mean beyond +-1 or a "
            "std outside 0.1..3), which slows the first layers.",
            "Normalise each channel to mean 0 and std 1.", details,
        )  # fmt: skip
    return Check(name, "pass", value, "The inputs are finite and normalised.", "", details)


def check_labels(labels: Tensor, num_classes: int | None, loss_kind: str) -> Check:
    """Judge class-index labels against the model's number of outputs."""
    name = "labels"
    if labels.is_floating_point():
        if loss_kind == "other" or num_classes is None:
            return Check(name, "pass", "float", "The targets are floats (not class indices) "
                         "and are not judged as labels.")  # fmt: skip
        return Check(
            name, "fail", str(labels.dtype).removeprefix("torch."),
            f"The labels are {labels.dtype}, but cross-entropy needs int64 class indices.",
            "Give the labels as torch.long class indices (y.long()).",
        )  # fmt: skip
    lo, hi = int(labels.min()), int(labels.max())
    if num_classes is None:
        return Check(name, "pass", f"{lo}..{hi}", "The model gave no outputs to compare with.")
    value = f"{lo}..{hi} for {num_classes} outputs"
    details = {"min": lo, "max": hi, "num_classes": num_classes}
    if lo < 0 or hi >= num_classes:
        return Check(
            name, "fail", value, f"The labels run {lo}..{hi}, but the model has "
            f"{num_classes} outputs, so valid labels are 0..{num_classes - 1}.",
            f"Remap the labels to 0..{num_classes - 1}, or give the last layer "
            f"{max(hi + 1, num_classes)} outputs.", details,
        )  # fmt: skip
    if hi < num_classes - 1 and labels.numel() >= MIN_PER_CLASS * num_classes:
        return Check(
            name, "warn", value, f"No label above {hi} in {labels.numel()} samples: outputs "
            f"{hi + 1}..{num_classes - 1} are never a target.",
            f"Give the last layer {hi + 1} outputs, or check the labels.", details,
        )  # fmt: skip
    return Check(name, "pass", value, "Every label is a valid output index.", "", details)


def _counts(labels: Tensor, classes: int) -> list[int]:
    return torch.bincount(labels.flatten().cpu(), minlength=classes).tolist()[:classes]


def _tv_distance(a: list[int], b: list[int]) -> float:
    """Total variation distance between two count vectors' distributions."""
    sa, sb = sum(a), sum(b)
    return 0.5 * sum(abs(x / sa - y / sb) for x, y in zip(a, b, strict=True))


def check_class_balance(train: Tensor, test: Tensor | None, num_classes: int | None) -> Check:
    """Judge how evenly the classes are represented, and whether test matches train."""
    name = "class_balance"
    labels = [t for t in (train, test) if t is not None]
    if any(t.is_floating_point() or int(t.min()) < 0 for t in labels):
        return Check(name, "pass", None, "The targets are not class indices; balance not judged.")
    classes = num_classes or int(train.max()) + 1
    if any(int(t.max()) >= classes for t in labels):
        return Check(name, "pass", None, "Labels out of range (see labels); balance not judged.")
    counts = _counts(train, classes)
    details: dict[str, object] = {"train": counts}
    if train.numel() < MIN_PER_CLASS * classes:
        return Check(name, "pass", None, f"{train.numel()} labels are too few to judge the "
                     f"balance of {classes} classes.", "", details)  # fmt: skip
    ratio = max(counts) / min(counts) if min(counts) else math.inf
    details["max_min_ratio"] = ratio
    if ratio > 3:
        return Check(
            name, "warn", ratio, f"The largest class has {ratio:.3g}x the samples of the "
            "smallest: the model can score well by favouring the large classes.",
            "Weight the loss (CrossEntropyLoss(weight=...)) or resample the classes.", details,
        )  # fmt: skip
    if test is not None and test.numel() >= MIN_PER_CLASS * classes:
        details["test"] = tv_counts = _counts(test, classes)
        tv = details["train_test_distance"] = _tv_distance(counts, tv_counts)
        if tv > 0.2:
            return Check(
                name, "warn", ratio, f"Train and test hold the classes in different shares "
                f"(total variation {tv:.2f}): test accuracy will not measure what training "
                "optimises.", "Split train and test from the same data, stratified by class.",
                details,
            )  # fmt: skip
    return Check(name, "pass", ratio, f"The classes are balanced (largest/smallest {ratio:.3g}).",
                 "", details)  # fmt: skip
