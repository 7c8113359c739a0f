"""Where a NaN/Inf was born, on models written here (none of them SimpleCNN), in a user's own
loop: each test names the module, phase and torch function it expects."""

from __future__ import annotations

import copy
import math
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from gradsight import Finding, GradMonitor, TrainConfig
from gradsight.data.base import LoadedDataset
from gradsight.health.birthplace import locate_nonfinite
from gradsight.train import Prepared, build_optimizer, fit, seed_everything

LossFn = Callable[[nn.Module, Any], Tensor]


# -- models nobody here designed the monitor for -------------------------------------------
class Residual(nn.Module):
    """A residual MLP block: the add is the block's own code, not a child's."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.fc = nn.Linear(d, d)
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return x + self.act(self.fc(x))  # (B, d)


class ResMLP(nn.Module):
    def __init__(self, d: int = 4, classes: int = 3) -> None:
        super().__init__()
        self.stem = nn.Linear(d, d)
        self.blocks = nn.Sequential(Residual(d), Residual(d))
        self.head = nn.Linear(d, classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.blocks(self.stem(x)))


class Attention(nn.Module):
    def __init__(self, d: int, heads: int = 2) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x: Tensor, pad: Tensor | None = None) -> Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-2, -1) / math.sqrt(d // self.heads)  # (B, H, T, T)
        if pad is not None:  # key padding: -inf on purpose
            scores = scores.masked_fill(pad[:, None, None, :], float("-inf"))
        out = scores.softmax(-1) @ v  # (B, H, T, hd)
        return self.proj(out.transpose(1, 2).reshape(b, t, d))


class ViTBlock(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.attn = Attention(d)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

    def forward(self, x: Tensor, pad: Tensor | None = None) -> Tensor:
        x = x + self.attn(self.norm(x), pad)
        return x + self.mlp(x)


class TinyViT(nn.Module):
    """Four 4x4 patches of a 1x8x8 image, unit-normalised tokens, two blocks, mean-pool."""

    def __init__(self, d: int = 8, classes: int = 3) -> None:
        super().__init__()
        self.embed = nn.Linear(16, d, bias=False)
        self.pos = nn.Parameter(torch.zeros(1, 4, d))
        self.blocks = nn.ModuleList([ViTBlock(d), ViTBlock(d)])
        self.head = nn.Linear(d, classes)

    def forward(self, x: Tensor, pad: Tensor | None = None) -> Tensor:
        b = x.shape[0]
        patches = x.reshape(b, 2, 4, 2, 4).permute(0, 1, 3, 2, 4).reshape(b, 4, 16)
        tokens = self.embed(patches)  # (B, 4, d)
        tokens = tokens / tokens.norm(dim=-1, keepdim=True) + self.pos  # 0/0 for a blank patch
        for block in self.blocks:
            tokens = block(tokens, pad)
        return self.head(tokens.mean(1))


class ScaledHead(nn.Module):
    def __init__(self, d: int, vocab: int) -> None:
        super().__init__()
        self.proj = nn.Linear(d, vocab)
        self.temperature = nn.Parameter(torch.ones(()))

    def forward(self, h: Tensor) -> Tensor:
        return self.proj(h) / self.temperature


class LSTMLM(nn.Module):
    """A language model: tokens (B, T) -> {"logits": (B, T, V), "hidden": (B, T, d)}."""

    def __init__(self, vocab: int = 12, d: int = 8) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.lstm = nn.LSTM(d, d, batch_first=True)  # returns a tuple
        self.head = ScaledHead(d, vocab)

    def forward(self, tokens: Tensor) -> dict[str, Tensor]:
        hidden, _ = self.lstm(self.emb(tokens))
        return {"logits": self.head(hidden), "hidden": hidden}


class GRURegressor(nn.Module):
    """Float sequences (B, T, 3) -> (prediction (B, 1), last hidden state): a tuple output."""

    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(3, 8, batch_first=True)
        self.out = nn.Linear(8, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        seq, h = self.gru(x)
        return self.out(seq[:, -1]), h


class Log(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return torch.log(x)


class Locked(nn.Module):
    """Holds a lock, as models with a data queue or a logger do: deepcopy cannot copy it."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.fc1 = nn.Linear(4, 6)
        self.bn = nn.BatchNorm1d(6)
        self.drop = nn.Dropout(0.5)
        self.act = Log()
        self.fc2 = nn.Linear(6, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.drop(self.bn(self.fc1(x)))))


def _ce(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
    return F.cross_entropy(model(batch["x"]), batch["y"])


def _step(
    model: nn.Module, batch: Any, loss_fn: LossFn = _ce, monitor: GradMonitor | None = None
) -> tuple[GradMonitor, Finding]:
    """One step of a user's loop: forward, backward, check; return the nonfinite finding."""
    monitor = monitor or GradMonitor(model, loss_fn=loss_fn)
    loss_fn(model, batch).backward()
    assert monitor.check(0, batch=batch)  # skip this update
    return monitor, next(f for f in monitor.findings if f.kind == "nonfinite")


def _eye(linear: nn.Linear) -> None:
    with torch.no_grad():
        linear.weight.copy_(torch.eye(linear.out_features, linear.in_features))
        linear.bias.zero_()


# -- forward births at every module level -----------------------------------------------------
def test_residual_add_is_blamed_on_its_block() -> None:
    torch.manual_seed(0)
    model = ResMLP()
    for linear in (model.stem, model.blocks[0].fc, model.blocks[1].fc):
        _eye(linear)
    # 1e38 doubles to 2e38 in blocks.0 (finite), then overflows in the add of blocks.1
    batch = {"x": torch.full((2, 4), 1e38), "y": torch.tensor([0, 1])}
    _, found = _step(model, batch)
    assert (found.phase, found.module, found.op) == ("forward", "blocks.1", "add")
    assert "born in the forward pass in blocks.1 (Residual.forward), op add" in found.message
    assert len(found.message) <= 300


def test_nan_in_the_roots_own_forward_names_the_model_class() -> None:
    torch.manual_seed(0)
    model = TinyViT()
    x = torch.randn(3, 1, 8, 8)
    x[1, :, :4, :4] = 0.0  # a blank patch: its token has norm 0, and 0/0 is NaN
    _, found = _step(model, {"x": x, "y": torch.tensor([0, 1, 2])})
    assert (found.phase, found.module, found.op) == ("forward", "", "div")
    assert "born in the forward pass in TinyViT.forward, op div" in found.message


def test_softmax_over_a_fully_padded_sequence_is_born_in_attention() -> None:
    torch.manual_seed(0)
    model = TinyViT()
    pad = torch.zeros(2, 4, dtype=torch.bool)
    pad[1] = True  # every key of sample 1 is padding: its softmax row is 0/0

    def loss_fn(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        return F.cross_entropy(model(batch["x"], batch["pad"]), batch["y"])

    batch = {"x": torch.randn(2, 1, 8, 8), "pad": pad, "y": torch.tensor([0, 1])}
    _, found = _step(model, batch, loss_fn)
    assert (found.phase, found.module, found.op) == ("forward", "blocks.0.attn", "softmax")
    assert "blocks.0.attn (Attention.forward), op softmax" in found.message


def test_dict_output_tuple_inside_and_sequence_targets(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = LSTMLM()
    with torch.no_grad():
        model.head.temperature.zero_()  # logits / 0

    def loss_fn(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        logits = model(batch["tokens"])["logits"]  # (B, T, V)
        return F.cross_entropy(logits.flatten(0, 1), batch["next"].flatten())

    tokens = torch.randint(0, 12, (4, 10))
    monitor = GradMonitor(model, loss_fn=loss_fn, run_dir=tmp_path)
    _, found = _step(model, {"tokens": tokens, "next": tokens.roll(-1, 1)}, loss_fn, monitor)
    assert (found.phase, found.module, found.op) == ("forward", "head", "div")
    assert "head (ScaledHead.forward), op div" in found.message
    assert found.param == "head.proj.weight"  # the bad parameter nearest the birthplace
    assert set(found.params) == {n for n, _ in model.named_parameters()}
    saved = torch.load(tmp_path / "nonfinite-step0.pt", weights_only=True)
    assert torch.equal(saved["batch"]["tokens"], tokens) and "head.temperature" in saved["state"]


def test_leaf_module_names_the_function_and_type() -> None:
    model = nn.Sequential(nn.Linear(4, 6), Log(), nn.Linear(6, 3))
    batch = {"x": torch.randn(5, 4), "y": torch.zeros(5, dtype=torch.long)}
    _, found = _step(model, batch)
    assert (found.phase, found.module, found.op) == ("forward", "1", "log")
    assert "1 (Log.forward), op log" in found.message


def test_the_loss_itself() -> None:
    model = nn.Linear(4, 3)

    def loss_fn(model: nn.Module, batch: Tensor) -> Tensor:
        return torch.sqrt(model(batch).sum() - 1e6)  # sqrt of a negative, outside the model

    _, found = _step(model, torch.randn(2, 4), loss_fn)
    assert (found.phase, found.module, found.op) == ("forward", None, "sqrt")
    assert "in the loss (outside the model), op sqrt" in found.message


# -- the batch and the weights --------------------------------------------------------------
def test_nan_in_the_input_batch_names_the_samples() -> None:
    torch.manual_seed(0)
    model = GRURegressor()
    x = torch.randn(4, 5, 3)
    x[1, 2, 0] = float("nan")
    x[3, :, 1] = float("inf")

    def loss_fn(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        return F.mse_loss(model(batch["x"])[0], batch["y"])

    _, found = _step(model, {"x": x, "y": torch.zeros(4, 1)}, loss_fn)
    assert (found.phase, found.module, found.op) == ("input", None, None)
    assert "held 6 NaN/Inf values, in 2 of 4 samples of batch['x'] (1, 3)" in found.message


def test_nonfinite_weights_from_an_infinite_lr_are_named() -> None:
    torch.manual_seed(0)
    model = GRURegressor()
    opt = torch.optim.SGD(model.parameters(), lr=float("inf"))

    def loss_fn(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        return F.mse_loss(model(batch["x"])[0], batch["y"])

    monitor = GradMonitor(model, loss_fn=loss_fn)
    batch = {"x": torch.randn(4, 5, 3), "y": torch.ones(4, 1)}
    for step in range(2):
        opt.zero_grad()
        loss_fn(model, batch).backward()
        if monitor.check(step, batch=batch):
            break
        opt.step()  # step 0: lr inf writes Inf/NaN into every weight
    found = next(f for f in monitor.findings if f.kind == "nonfinite")
    assert (found.step, found.phase, found.module, found.op) == (1, "weights", "gru", None)
    assert found.param == "gru.weight_ih_l0"
    assert "the weights held NaN/Inf before this step's forward pass (all 6 parameters)" in (
        found.message
    )


# -- the replay itself ------------------------------------------------------------------------
def test_replay_never_copies_restores_state_and_repeats_dropout() -> None:
    torch.manual_seed(0)
    model = Locked().train()
    with pytest.raises(TypeError):
        copy.deepcopy(model)
    masks: list[Tensor] = []
    model.drop.register_forward_hook(lambda m, args, out: masks.append(out != 0))
    batch = {"x": torch.randn(8, 4), "y": torch.zeros(8, dtype=torch.long)}
    monitor = GradMonitor(model, loss_fn=_ce)
    _ce(model, batch).backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    state = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    assert monitor.check(0, batch=batch)
    found = next(f for f in monitor.findings if f.kind == "nonfinite")
    assert (found.phase, found.module, found.op) == ("forward", "act", "log")
    assert len(masks) == 2 and torch.equal(masks[0], masks[1])  # the same dropout mask
    assert all(p.grad is grads[n] for n, p in model.named_parameters())  # untouched .grad
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in state.items())  # BN stats put back
    assert torch.equal(torch.get_rng_state(), rng)  # the user's random stream goes on as is
    assert model.training


def test_a_loss_fn_that_writes_a_weight_is_warned_about() -> None:
    model = nn.Sequential(nn.Linear(4, 6), Log(), nn.Linear(6, 3))
    calls: list[int] = []

    def loss_fn(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        calls.append(1)
        if len(calls) > 1:  # in the replay
            with torch.no_grad():
                model[2].weight.mul_(0.5)
        return _ce(model, batch)

    batch = {"x": torch.randn(5, 4), "y": torch.zeros(5, dtype=torch.long)}
    with pytest.warns(UserWarning, match=r"loss_fn wrote 2\.weight in place"):
        _, found = _step(model, batch, loss_fn)
    assert (found.phase, found.module, found.op) == ("forward", "1", "log")


def test_float16_only_overflow_is_found_under_the_users_autocast() -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    with torch.no_grad():
        model[0].weight.fill_(1e3)  # 4 * 30 * 1e3 = 1.2e5: finite in float32, Inf in float16

    def loss_fn(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        with torch.autocast("cpu", dtype=torch.float16):
            logits = model(batch["x"])
        return F.cross_entropy(logits.float(), batch["y"])

    batch = {"x": torch.full((2, 4), 30.0), "y": torch.tensor([0, 1])}
    assert torch.isfinite(_ce(model, batch))  # float32 sees no overflow at all
    _, found = _step(model, batch, loss_fn)
    assert (found.phase, found.module, found.op) == ("forward", "0", "linear")


def test_backward_birth_in_a_recurrent_model() -> None:
    torch.manual_seed(0)
    model = GRURegressor()

    def loss_fn(model: nn.Module, batch: Tensor) -> Tensor:
        pred, _ = model(batch)
        return torch.where(pred > 1e3, pred.sqrt(), pred).sum()  # sqrt(<0) masked, not in backward

    _, found = _step(model, torch.randn(3, 4, 3), loss_fn)
    assert (found.phase, found.module, found.op) == ("backward", None, "SqrtBackward0")
    assert "born in the backward pass at SqrtBackward0 in the loss, outside the model" in (
        found.message
    )


def _compile_works() -> bool:
    try:
        return bool(torch.compile(lambda t: t + 1)(torch.ones(1)).item() == 2)
    except Exception:  # no C++ compiler or an unsupported Python: torch.compile cannot run
        return False


@pytest.mark.skipif(not _compile_works(), reason="torch.compile cannot run here")
def test_compiled_model_is_unwrapped_and_replayed_eagerly() -> None:
    torch.manual_seed(0)
    eager = nn.Sequential(nn.Linear(4, 6), Log(), nn.Linear(6, 3))
    model = torch.compile(eager)
    batch = {"x": torch.randn(5, 4), "y": torch.zeros(5, dtype=torch.long)}
    monitor, found = _step(model, batch)  # type: ignore[arg-type]
    assert (found.phase, found.module, found.op) == ("forward", "1", "log")
    assert found.params == ("0.weight", "0.bias", "2.weight", "2.bias")  # no _orig_mod.
    info = [f for f in monitor.findings if f.kind == "compiled"]
    assert len(info) == 1 and info[0].severity == "info" and "one autograd node" in info[0].message
    batch["x"].neg_()
    monitor.check(1, batch=batch)
    assert [f.kind for f in monitor.findings].count("compiled") == 1  # said once


def test_locate_leaves_a_clean_batch_unexplained() -> None:
    model = ResMLP()
    batch = {"x": torch.randn(2, 4), "y": torch.tensor([0, 1])}
    born = locate_nonfinite(model, batch, _ce)
    assert born.phase is None and "not reproduced" in born.where
    assert all(p.grad is None for p in model.parameters())


def test_mobilenet_message_stays_short() -> None:
    torchvision = pytest.importorskip("torchvision")
    model = torchvision.models.mobilenet_v3_small(num_classes=3)
    x = torch.randn(2, 3, 32, 32)
    x[0, 0, 0, 0] = float("nan")
    _, found = _step(model, {"x": x, "y": torch.tensor([0, 1])}, monitor=None)
    assert found.phase == "input" and len(found.message) <= 300
    assert re.match(
        r"NaN/Inf gradient in \d+ of 142 parameters, in features, classifier; ", found.message
    )
    assert 100 < len(found.params) < 142


class DropLog(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(64, 16)
        self.drop = nn.Dropout(0.5)
        self.act = Log()
        self.fc2 = nn.Linear(16, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.drop(self.fc1(x.flatten(1)))))


def test_in_fit_the_loop_gives_the_random_state_and_no_hook_stays(tiny_data: LoadedDataset) -> None:
    config = TrainConfig(batch_size=16, epochs=1)
    seed_everything(0)
    model = DropLog()
    masks: list[Tensor] = []

    def keep(module: nn.Module, args: object, out: Tensor) -> None:
        if module.training:  # not the evaluation at the end
            masks.append(out != 0)

    model.drop.register_forward_hook(keep)
    prepared = Prepared(
        config, tiny_data, model, build_optimizer(config, model), torch.device("cpu")
    )
    monitor = GradMonitor(model)
    assert len(model._forward_pre_hooks) == 1  # for a user's own loop
    result = fit(prepared, [monitor])
    assert result.status == "stopped" and len(model._forward_pre_hooks) == 0
    found = next(f for f in monitor.findings if f.kind == "nonfinite")
    assert (found.phase, found.module, found.op) == ("forward", "act", "log")
    assert len(masks) == 2  # the step, then its replay: the same dropout mask
    assert torch.equal(masks[0], masks[1]) and not masks[0].all()


def test_torchvision_resnet18_residual_add_is_blamed_on_its_block() -> None:
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=3)
    with torch.no_grad():  # layer1.0 puts out ~2e38; layer1.1's branch also adds ~2e38
        model.layer1[0].bn2.bias.fill_(2e38)
        model.layer1[1].conv1.weight.zero_()
        model.layer1[1].bn2.bias.fill_(2e38)
    batch = {"x": torch.randn(2, 3, 32, 32), "y": torch.tensor([0, 1])}
    _, found = _step(model, batch)
    assert (found.phase, found.module, found.op) == ("forward", "layer1.1", "add")
    assert "layer1.1 (BasicBlock.forward), op add" in found.message
    assert found.param == "layer1.1.bn2.weight" and len(found.message) <= 300
