"""The lr range test: lr 10 on SimpleCNN with the bundled data, the default lr, an lr far
too low, a sweep that never falls, and the sweep's own arithmetic."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gradsight.data import load_dataset
from gradsight.models import SimpleCNN
from gradsight.preflight import CheckConfig, check
from gradsight.preflight.lr_range import LrSweep, check_lr_range, lr_sweep

from .nets import tiny_batches
from .test_overfit import MeanOnly

Batches = list[tuple[torch.Tensor, torch.Tensor]]


@pytest.fixture(scope="module")
def fashion() -> Batches:
    """Eight shuffled batches of 64 of the bundled Fashion-MNIST subset."""
    data = load_dataset("fashion-mnist-mini")
    stream = data.train.batches(64, shuffle=True, generator=torch.Generator().manual_seed(0))
    return [next(stream) for _ in range(8)]


def _lr_check(batches: Batches, lr: float | None) -> dict[str, object]:
    torch.manual_seed(42)
    model = SimpleCNN(1, 10, 28)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr) if lr else None
    report = check(model, batches, optimizer=optimizer, overfit_steps=5)
    return report["lr_range"].to_dict()


def test_lr_10_on_simple_cnn_fails(fashion: Batches) -> None:
    lr = _lr_check(fashion, 10.0)
    assert lr["status"] == "fail" and "past the blow-up point" in lr["message"]
    details = lr["details"]
    assert isinstance(details, dict) and details["blowup_lr"] < 10 and details["fell"] is True
    assert lr["value"] == details["suggested_lr"] < details["blowup_lr"]
    assert f"--lr {lr['value']:.2g}" in str(lr["fix"])


def test_the_default_lr_passes_and_a_tiny_one_warns(fashion: Batches) -> None:
    torch.manual_seed(42)
    sweep = lr_sweep(SimpleCNN(1, 10, 28), fashion, F.cross_entropy, None, CheckConfig())
    default = check_lr_range(sweep, 0.01)  # the same SGD sweep serves every configured lr
    assert default.status == "pass" and "suits SGD" in default.message
    crawl = check_lr_range(sweep, 1e-6)
    assert crawl.status == "warn" and "below the suggested" in crawl.message
    free = check_lr_range(sweep, None)  # no optimizer: only a suggestion
    assert free.status == "pass" and "start near" in free.message


def test_a_sweep_whose_loss_never_falls_warns() -> None:
    torch.manual_seed(0)
    flat = check(MeanOnly(), tiny_batches(), overfit_steps=5)["lr_range"]
    assert (flat.status, flat.value) == ("warn", None) and "never fell" in flat.message


def test_sweep_schedule_and_a_configured_lr_beyond_it() -> None:
    config = CheckConfig(lr_min=1e-4, lr_max=1.0, lr_steps=10)
    model = SimpleCNN(1, 3, 8)
    sweep = lr_sweep(model, tiny_batches(), F.cross_entropy, None, config)
    assert sweep.lrs[0] == pytest.approx(1e-4) and len(sweep.lrs) <= 10
    steps = zip(sweep.lrs, sweep.lrs[1:], strict=False)
    assert all(b / a == pytest.approx(10 ** (4 / 9)) for a, b in steps)
    assert sweep.optimizer == "SGD"
    high = torch.optim.Adam(model.parameters(), lr=50.0)
    reached = check(model, tiny_batches(), optimizer=high, overfit_steps=5, lr_steps=20)
    details = reached["lr_range"].details
    assert details["optimizer"] == "Adam"
    assert details["blowup_lr"] is not None or details["lrs"][-1] == pytest.approx(150.0)


def test_check_lr_range_rules() -> None:
    def sweep(blowup: float | None) -> LrSweep:
        return LrSweep([1e-3, 1e-2, 1e-1, 1.0], [2.0, 1.5, 1.0, 9.0], [2.0, 1.6, 1.2], 0.1,
                       blowup, "SGD")  # fmt: skip

    assert sweep(1.0).suggested_lr == pytest.approx(0.01)
    assert check_lr_range(sweep(1.0), 1.0).status == "fail"
    assert check_lr_range(sweep(1.0), 0.5).status == "pass"  # below the blow-up point
    assert check_lr_range(sweep(None), 5.0).status == "pass"  # never blew up
    assert check_lr_range(sweep(1.0), 1e-5).status == "warn"  # 1000x below
    assert check_lr_range(sweep(1.0), 1e-4).status == "pass"  # 100x below: the limit
