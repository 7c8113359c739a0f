"""The guard that lets checks run on a user's model and leaves it as it was."""

from __future__ import annotations

import pytest
import torch

from gradsight.preflight.guard import copy_training, device_of, preserved

from .nets import TinyResNet, tiny_batches


def test_preserved_undoes_a_failed_block() -> None:
    model = TinyResNet().eval()
    buffers = [b.clone() for b in model.buffers()]
    x, y = tiny_batches()[0]
    rng = torch.get_rng_state()
    with pytest.raises(RuntimeError, match="boom"), preserved(model):
        assert model.training  # the block runs in train mode
        torch.nn.functional.cross_entropy(model(x), y).backward()  # moves BN stats, sets grads
        torch.rand(3)
        raise RuntimeError("boom")
    assert not model.training and not any(m.training for m in model.modules())
    assert all(torch.equal(a, b) for a, b in zip(model.buffers(), buffers, strict=True))
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(torch.get_rng_state(), rng)


def test_copy_training_keeps_settings_not_state() -> None:
    model = TinyResNet()
    optimizer = torch.optim.SGD(
        [{"params": model.head.parameters(), "lr": 0.5},
         {"params": model.stem.parameters()}], lr=0.1, momentum=0.9, nesterov=True,
    )  # fmt: skip
    x, y = tiny_batches()[0]
    torch.nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()
    twin, opt = copy_training(model, optimizer)
    assert opt is not None and type(opt) is torch.optim.SGD and opt.state_dict()["state"] == {}
    assert [g["lr"] for g in opt.param_groups] == [0.5, 0.1]
    assert opt.param_groups[1]["nesterov"] and opt.param_groups[1]["momentum"] == 0.9
    assert opt.param_groups[0]["params"][0] is twin.head.weight
    assert twin.head.weight is not model.head.weight
    assert torch.equal(twin.head.weight, model.head.weight) and twin.head.weight.grad is None
    assert device_of(model) == torch.device("cpu") == device_of(torch.nn.ReLU())
