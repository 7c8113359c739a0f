"""The output checks: a double softmax, a 50x-scaled last layer, NLL on logits, the shape."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gradsight.models import SimpleCNN
from gradsight.preflight import check
from gradsight.preflight.output_checks import output_kind

from .nets import CLASSES, tiny_batches


class Small(SimpleCNN):
    def __init__(self) -> None:
        super().__init__(1, CLASSES, 8)


class DoubleSoftmax(Small):
    """Returns probabilities, which CrossEntropyLoss softmaxes again."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x).softmax(dim=1)


class LogSoftmax(Small):
    def forward(self, x: Tensor) -> Tensor:
        return F.log_softmax(super().forward(x), dim=1)


class Sigmoid(Small):
    def forward(self, x: Tensor) -> Tensor:
        return torch.sigmoid(super().forward(x))


def test_double_softmax_fails_and_cannot_overfit() -> None:
    torch.manual_seed(0)
    report = check(DoubleSoftmax(), tiny_batches(), lr_steps=10)
    logits = report["logits"]
    assert (logits.status, logits.value) == ("fail", "probabilities")
    assert "double softmax" in logits.message and "remove the final softmax" in logits.fix
    overfit = report["overfit_batch"]
    assert overfit.status == "fail" and overfit.value > 0.5  # log(1 + 2/e) is its floor
    assert "logits (fail)" in overfit.message  # it names what the other checks found


def test_a_50x_scaled_last_layer_fails_the_initial_loss() -> None:
    torch.manual_seed(0)
    model = SimpleCNN(1, CLASSES, 8)
    with torch.no_grad():
        model.fc.weight.mul_(50)
    report = check(model, tiny_batches(), overfit_steps=5, lr_steps=10)
    loss = report["initial_loss"]
    assert loss.status == "fail" and loss.value > 3 * math.log(CLASSES)
    assert loss.details["logit_std"] > 5 and "last layer's scale is too large" in loss.message
    assert "Scale the last layer" in loss.fix
    torch.manual_seed(0)
    plain = check(SimpleCNN(1, CLASSES, 8), tiny_batches(), overfit_steps=5, lr_steps=10)
    assert plain["initial_loss"].status == "pass"
    assert abs(plain["initial_loss"].details["ratio"] - 1) < 0.5


def test_nll_needs_log_probabilities() -> None:
    nll = nn.NLLLoss()
    on_logits = check(Small(), tiny_batches(), nll, overfit_steps=5, lr_steps=10)
    assert (on_logits["logits"].status, on_logits["logits"].value) == ("fail", "logits")
    proper = check(LogSoftmax(), tiny_batches(), nll, overfit_steps=5, lr_steps=10)
    assert (proper["logits"].status, proper["logits"].value) == ("pass", "log-probabilities")
    assert proper["initial_loss"].status == "pass"


def test_sigmoid_outputs_into_cross_entropy_warn() -> None:
    report = check(Sigmoid(), tiny_batches(), overfit_steps=5, lr_steps=10)
    assert (report["logits"].status, report["logits"].value) == ("warn", "bounded")


def test_output_kind() -> None:
    z = torch.randn(4, 5) * 3
    assert output_kind(z) == "logits"
    assert output_kind(z.softmax(1)) == "probabilities"
    assert output_kind(z.log_softmax(1)) == "log-probabilities"
    assert output_kind(torch.rand(4, 5)) == "bounded"


class OneOutput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(64, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(x.flatten(1))


class BatchMean(OneOutput):
    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x).mean(0)  # the batch dimension averaged away


@pytest.mark.filterwarnings("ignore:Using a target size:UserWarning")  # MSE of (1,) vs (64,)
def test_output_shape() -> None:
    one = check(OneOutput(), tiny_batches())
    assert (one["output_shape"].status, one["output_shape"].value) == ("fail", "[64, 1]")
    assert "always 0" in one["output_shape"].message
    lost = check(BatchMean(), tiny_batches(), loss_fn=F.mse_loss)["output_shape"]
    assert lost.status == "fail" and "first dimension" in lost.message
