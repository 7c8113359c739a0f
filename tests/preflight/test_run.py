"""``gradsight.check`` end to end: a healthy model passes every check, and nothing it was
given (model, buffers, grads, modes, optimizer, random state) changes."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

import gradsight
from gradsight.errors import ConfigError
from gradsight.preflight import CheckConfig, CheckReport, check

from .nets import TinyResNet, tiny_batches

ALL = [
    "input_stats", "labels", "class_balance", "output_shape", "logits", "initial_loss",
    "dead_relu", "saturation", "activation_scale", "missing_grad", "grad_ratio", "train_eval",
    "batchnorm_batch", "overfit_batch", "lr_range",
]  # fmt: skip


@pytest.fixture(scope="module")
def healthy() -> CheckReport:
    torch.manual_seed(0)
    model = TinyResNet()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return gradsight.check(model, tiny_batches(), optimizer=optimizer,
                           test_batches=tiny_batches(seed=1))  # fmt: skip


def test_a_healthy_residual_model_passes_every_check(healthy: CheckReport) -> None:
    assert [c.name for c in healthy] == ALL
    assert {c.name: c.status for c in healthy} == dict.fromkeys(ALL, "pass")
    assert healthy.ok and healthy.seconds > 0
    assert healthy["train_eval"].value > 0.01  # its dropout and batch norm act differently
    assert healthy["overfit_batch"].value <= CheckConfig().overfit_target


def test_report_json_has_the_five_fields_and_details(healthy: CheckReport) -> None:
    data = json.loads(json.dumps(healthy.to_dict(), allow_nan=False))
    assert set(data) == {"checks", "ok", "seconds"} and data["ok"] is True
    for entry in data["checks"]:
        assert set(entry) == {"name", "status", "value", "message", "fix", "details"}
        assert entry["message"].endswith(".") and ". " not in entry["message"]  # one sentence
    assert data["checks"][ALL.index("class_balance")]["details"]["train"] == [32, 32, 32]


def test_check_changes_nothing_it_was_given() -> None:
    torch.manual_seed(1)
    model = TinyResNet()
    model.blocks[1].bn1.eval()  # a mixed-mode model must come back mixed
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = tiny_batches()[0]
    torch.nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()  # momentum buffers and running statistics exist now
    torch.nn.functional.cross_entropy(model(x), y).backward()  # and grads are set
    state = {k: v.clone() for k, v in model.state_dict().items()}
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    modes = [m.training for m in model.modules()]
    opt_state = {k: v["momentum_buffer"].clone() for k, v in optimizer.state.items()}
    rng = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy())

    report = check(model, tiny_batches(), optimizer=optimizer, overfit_steps=30, lr_steps=20)

    assert len(report) == 15  # every check ran, overfit and lr tests included
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in state.items())  # weights and BN buffers
    assert {n: p.grad for n, p in model.named_parameters()}.keys() == grads.keys()
    assert all(torch.equal(p.grad, grads[n]) for n, p in model.named_parameters())
    assert [m.training for m in model.modules()] == modes
    assert all(torch.equal(optimizer.state[p]["momentum_buffer"], b) for p, b in opt_state.items())
    assert optimizer.param_groups[0]["lr"] == 0.1
    assert torch.equal(torch.get_rng_state(), rng[0]) and random.getstate() == rng[1]
    assert (np.random.get_state()[1] == rng[2]).all()


def test_settings_and_bad_batches_are_refused() -> None:
    model = TinyResNet()
    with pytest.raises(ConfigError, match="unknown check settings"):
        check(model, tiny_batches(), overfit_stesp=3)
    with pytest.raises(ConfigError, match="must be positive"):
        check(model, tiny_batches(), lr_steps=0)
    with pytest.raises(ConfigError, match="no batches"):
        check(model, [])
    with pytest.raises(ConfigError, match=r"batch 0 is a dict.*\(inputs, targets\)"):
        check(model, [{"x": torch.zeros(2, 1, 8, 8)}])


def test_a_model_that_raises_stops_at_output_shape() -> None:
    report = check(torch.nn.Linear(5, 3), tiny_batches())  # 8x8 images into Linear(5)
    assert [c.name for c in report] == ALL[:4]
    assert report["output_shape"].status == "fail" and not report.ok
    assert "mat1 and mat2 shapes cannot be multiplied" in report["output_shape"].message
    assert report["input_stats"].status == "pass"  # the data checks still ran


def test_a_dataloader_is_read_only_as_far_as_needed() -> None:
    x = torch.cat([b[0] for b in tiny_batches()])
    y = torch.cat([b[1] for b in tiny_batches()])
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
    report = check(TinyResNet(), loader, overfit_steps=5, lr_steps=10, max_batches=3)
    assert report["input_stats"].details["samples"] == 24  # 3 batches of 8 were read
    assert report["batchnorm_batch"].value == 8 and report["batchnorm_batch"].status == "pass"
