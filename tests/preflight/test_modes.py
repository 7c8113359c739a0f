"""The train/eval checks: batch norm with batch size 1, a model left in eval mode, a stray
eval layer, and a forward with its own ``self.training`` branch."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gradsight.models import SimpleCNN
from gradsight.preflight import check
from gradsight.preflight.modes import check_batchnorm_batch, mode_layers

from .nets import TinyResNet, tiny_batches

FAST = {"overfit_steps": 5, "lr_steps": 10}


class NoisyInTraining(SimpleCNN):
    """Adds noise in train mode by hand: no dropout module explains the difference."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x + 0.5 * torch.randn_like(x) if self.training else x)


def test_batchnorm_with_batch_size_1_fails() -> None:
    ones = [(x[i : i + 1], y[i : i + 1]) for x, y in tiny_batches() for i in range(2)]
    report = check(TinyResNet(), ones, **FAST)
    bn = report["batchnorm_batch"]
    assert (bn.status, bn.value) == ("fail", 1)
    assert "normalised by itself" in bn.message and "GroupNorm" in bn.fix
    plain = check(SimpleCNN(1, 3, 8), ones, **FAST)["batchnorm_batch"]
    assert plain.status == "pass"  # no batch norm: batch size 1 is fine


def test_batchnorm_batch_sizes() -> None:
    model = TinyResNet()
    assert check_batchnorm_batch(model, [32, 32], None).status == "pass"
    last = check_batchnorm_batch(model, [32, 32], last_batch=1)
    assert last.status == "warn" and "last batch holds 1 sample" in last.message
    assert check_batchnorm_batch(model, [32, 1], None).status == "warn"  # seen in the data
    assert check_batchnorm_batch(model, [4, 4], None).status == "warn"  # noisy statistics


def test_a_model_left_in_eval_mode_warns() -> None:
    model = TinyResNet().eval()
    mode = check(model, tiny_batches(), **FAST)["train_eval"]
    assert mode.status == "warn" and "The model is in eval mode" in mode.message
    assert "model.train()" in mode.fix and mode.value > 0.01
    assert not model.training  # and it stays in eval mode


def test_a_stray_eval_layer_warns_and_a_training_branch_is_measured() -> None:
    model = TinyResNet()
    model.blocks[0].bn2.eval()
    stray = check(model, tiny_batches(), **FAST)["train_eval"]
    assert stray.status == "warn" and "blocks.0.bn2 is in eval mode" in stray.message
    branch = check(NoisyInTraining(1, 3, 8), tiny_batches(), **FAST)["train_eval"]
    assert branch.status == "pass" and branch.value > 0.05
    assert "self.training" in branch.message
    same = check(SimpleCNN(1, 3, 8), tiny_batches(), **FAST)["train_eval"]
    assert same.value == 0.0 and "self.training" not in same.message


def test_mode_layers() -> None:
    assert mode_layers(TinyResNet()) == {
        "dropout": ["drop"],
        "batchnorm": ["stem.1", "blocks.0.bn1", "blocks.0.bn2", "blocks.1.bn1", "blocks.1.bn2"],
    }
    assert mode_layers(nn.Sequential(nn.InstanceNorm2d(3))) == {"dropout": [], "batchnorm": []}
