"""The data checks: unnormalised and broken inputs, labels out of range, class balance."""

from __future__ import annotations

import torch

from gradsight.preflight import check
from gradsight.preflight.data_checks import check_class_balance, check_input_stats, check_labels

from .nets import TinyResNet, tiny_batches


def test_unnormalised_0_255_inputs_fail() -> None:
    raw = [((x * 64 + 128).clamp(0, 255).round(), y) for x, y in tiny_batches()]  # pixel values
    report = check(TinyResNet(), raw, overfit_steps=5, lr_steps=10)
    stats = report["input_stats"]
    assert stats.status == "fail" and "not normalised" in stats.message
    assert stats.details["max"] == [255.0] and stats.details["mean"][0] > 100
    assert "(x - mean) / std" in stats.fix
    normal = check_input_stats([x for x, _ in tiny_batches()])
    assert normal.status == "pass" and abs(normal.details["mean"][0]) < 1e-5


def test_uint8_nan_and_constant_channels() -> None:
    assert check_input_stats([torch.zeros(2, 1, 4, 4, dtype=torch.uint8)]).status == "fail"
    x = torch.randn(4, 2, 4, 4)
    x[1, 0, 2, 2] = float("nan")
    broken = check_input_stats([x])
    assert (broken.status, broken.value) == ("fail", 1)
    x = torch.randn(4, 2, 4, 4)
    x[:, 1] = 0.5  # the second channel never changes
    constant = check_input_stats([x])
    assert constant.status == "warn" and "[1]" in constant.message
    shifted = check_input_stats([torch.randn(8, 1, 4, 4) * 0.2 + 3])  # mean 3, std 0.2
    assert shifted.status == "warn" and "not centred" in shifted.message
    assert check_input_stats([torch.arange(6).view(2, 3)]).status == "pass"  # token ids


def test_labels_out_of_range_fail_and_stop_before_training() -> None:
    shifted = [(x, y + 1) for x, y in tiny_batches()]  # labels 1..3 for 3 outputs
    report = check(TinyResNet(), shifted)
    labels = report["labels"]
    assert labels.status == "fail" and labels.value == "1..3 for 3 outputs"
    assert "0..2" in labels.message and "4 outputs" in labels.fix
    assert report["initial_loss"].status == "fail"  # cross-entropy raises on label 3
    assert "overfit_batch" not in [c.name for c in report]  # training could not run either
    assert not report.ok


def test_labels_of_the_wrong_type_or_too_few_classes() -> None:
    floats = check_labels(torch.tensor([0.0, 1.0, 2.0]), 3, "cross_entropy")
    assert floats.status == "fail" and "int64" in floats.message
    assert check_labels(torch.tensor([0.5, 1.5]), 3, "other").status == "pass"  # regression
    unused = check_labels(torch.arange(100) % 2, 3, "cross_entropy")
    assert unused.status == "warn" and "outputs 2..2 are never a target" in unused.message
    assert check_labels(torch.arange(9) % 3, 3, "cross_entropy").status == "pass"


def test_class_balance() -> None:
    balanced = torch.arange(300) % 3
    assert check_class_balance(balanced, balanced, 3).status == "pass"
    skewed = torch.cat([torch.zeros(200), torch.ones(50), torch.full((50,), 2)]).long()
    imbalanced = check_class_balance(skewed, None, 3)
    assert imbalanced.status == "warn" and imbalanced.value == 4.0
    assert imbalanced.details["train"] == [200, 50, 50]
    shifted = check_class_balance(balanced, skewed, 3)
    assert shifted.status == "warn" and "different shares" in shifted.message
    assert abs(shifted.details["train_test_distance"] - 1 / 3) < 1e-9
    few = check_class_balance(torch.tensor([0, 0, 0, 1]), None, 3)
    assert few.status == "pass" and few.value is None and "too few" in few.message
