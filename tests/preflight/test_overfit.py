"""The overfit test: a model that cannot fit one batch, one that fits slowly, one that
cannot be copied."""

from __future__ import annotations

import threading

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gradsight.models import SimpleCNN
from gradsight.preflight import CheckConfig, check
from gradsight.preflight.overfit import check_overfit, overfit_losses

from .nets import CLASSES, tiny_batches


class MeanOnly(nn.Module):
    """Sees only each image's mean brightness, the same for every class of the tiny data."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(1, CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(x.mean(dim=(1, 2, 3)).unsqueeze(1))  # (B, 1) -> (B, CLASSES)


class Locked(SimpleCNN):
    def __init__(self) -> None:
        super().__init__(1, CLASSES, 8)
        self.lock = threading.Lock()  # copy.deepcopy cannot copy a lock


def test_a_model_that_cannot_overfit_fails() -> None:
    report = check(MeanOnly(), tiny_batches(), lr_steps=10)
    overfit = report["overfit_batch"]
    assert overfit.status == "fail" and "cannot overfit 16 samples" in overfit.message
    assert overfit.details["steps"] == CheckConfig().overfit_steps  # it tried them all
    assert overfit.value > 0.5
    assert "other checks point to" in overfit.message or "depend on the input" in overfit.message


def test_slow_progress_warns_and_fast_progress_stops_early() -> None:
    x, y = tiny_batches()[0]
    torch.manual_seed(0)
    strict = CheckConfig(overfit_steps=40, overfit_target=1e-6)
    slow = check_overfit(SimpleCNN(1, CLASSES, 8), x[:16], y[:16], F.cross_entropy, strict, [])
    assert slow.status == "warn" and slow.value < 0.25 * slow.details["losses"][0]
    torch.manual_seed(0)
    losses = overfit_losses(SimpleCNN(1, CLASSES, 8), x[:16], y[:16], F.cross_entropy,
                            CheckConfig())  # fmt: skip
    assert losses[-1] <= 0.05 < min(losses[:-1]) and len(losses) < 100


def test_an_uncopyable_model_warns_instead_of_crashing() -> None:
    report = check(Locked(), tiny_batches(), lr_steps=10)
    assert report["overfit_batch"].status == "warn"
    assert "could not run" in report["overfit_batch"].message
    assert report["lr_range"].status == "warn"
