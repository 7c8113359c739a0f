"""NonFiniteSentinel: where NaN/Inf is born in a forward pass, and -inf masks made on purpose."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gradsight.config import TrainConfig
from gradsight.data.base import LoadedDataset
from gradsight.health.monitor import GradMonitor, MonitorConfig
from gradsight.health.sentinel import NonFiniteSentinel, SentinelHit, op_name
from gradsight.train import Prepared, build_optimizer, fit, seed_everything


class CausalAttention(nn.Module):
    """Single-head causal self-attention over the 8 rows of a 1x8x8 image."""

    def __init__(self, d: int = 8, classes: int = 3, mask: str = "buffer") -> None:
        super().__init__()
        self.qkv = nn.Linear(d, 3 * d)
        self.head = nn.Linear(d, classes)
        self.mask = mask
        self.register_buffer("causal", torch.full((8, 8), float("-inf")).triu(1))

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = self.qkv(x.flatten(1, 2)).chunk(3, -1)  # (B, 8, d) each
        scores = q @ k.transpose(1, 2)  # (B, 8, 8)
        if self.mask == "buffer":
            scores = scores + self.causal
        else:  # built in the forward pass, with an infinite Python number
            scores = scores.masked_fill(torch.ones(8, 8).triu(1).bool(), float("-inf"))
        return self.head((scores.softmax(-1) @ v).mean(1))


def test_a_causal_mask_is_not_a_birth() -> None:
    for mask in ("buffer", "masked_fill"):
        model = CausalAttention(mask=mask)
        with NonFiniteSentinel(model) as sentinel:
            out = model(torch.randn(2, 1, 8, 8))
        assert sentinel.hit is None and sentinel.origin(out) is None, mask


def test_softmax_of_a_fully_masked_row_is_born_in_the_module() -> None:
    model = CausalAttention(mask="buffer")
    model.causal.fill_(float("-inf"))  # every key masked: softmax is 0/0
    with NonFiniteSentinel(model) as sentinel:
        out = model(torch.randn(2, 1, 8, 8))
    assert sentinel.hit == SentinelHit("softmax", "", "CausalAttention")
    assert sentinel.origin(out) == sentinel.hit


def test_inf_carried_into_nan_keeps_its_first_birth() -> None:
    model = nn.Sequential(nn.Linear(2, 2))
    with NonFiniteSentinel(model) as sentinel:
        big = torch.exp(model(torch.ones(1, 2)) * 1e4)  # Inf, born in exp
        out = big - big  # Inf - Inf: NaN, carried from exp
    assert sentinel.origin(out) == SentinelHit("exp", None, None)


def test_operator_names_read_as_written() -> None:
    assert [op_name(f) for f in (Tensor.__radd__, Tensor.__iadd__, Tensor.__truediv__)] == [
        "add", "add", "div",
    ]  # fmt: skip
    assert op_name(Tensor.add_) == "add" and op_name(torch.log) == "log"


def test_causal_attention_trains_without_a_masked_warning(tiny_data: LoadedDataset) -> None:
    config = TrainConfig(batch_size=16, epochs=1, log_every=2)
    seed_everything(0)
    model = CausalAttention()
    prepared = Prepared(
        config, tiny_data, model, build_optimizer(config, model), torch.device("cpu")
    )
    monitor = GradMonitor(model, MonitorConfig(log_every=2, sentinel_every=2))
    result = fit(prepared, [monitor])
    assert result.status == "completed"
    assert [f.kind for f in monitor.findings] == []
