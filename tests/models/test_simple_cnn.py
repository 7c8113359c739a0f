from __future__ import annotations

import torch
from torch import nn

from gradsight.models import DeepCNN, SimpleCNN


def test_article_shapes_on_3x32x32() -> None:
    model = SimpleCNN(in_channels=3, num_classes=10, image_size=32)
    shapes = {name: list(p.shape) for name, p in model.named_parameters()}
    assert shapes == {
        "conv1.weight": [16, 3, 3, 3],
        "conv1.bias": [16],
        "fc.weight": [10, 4096],
        "fc.bias": [10],
    }
    assert [name for name, _ in model.named_children()] == ["conv1", "relu", "pool", "fc"]
    assert isinstance(model.relu, nn.ReLU) and isinstance(model.pool, nn.MaxPool2d)
    assert model(torch.randn(4, 3, 32, 32)).shape == (4, 10)


def test_sized_from_data() -> None:
    model = SimpleCNN(in_channels=1, num_classes=7, image_size=(28, 20))
    assert model.fc.in_features == 16 * 14 * 10
    assert model(torch.randn(2, 1, 28, 20)).shape == (2, 7)


def test_matches_hand_written_article_network() -> None:
    torch.manual_seed(0)
    model = SimpleCNN(3, 10, 32)
    x = torch.randn(2, 3, 32, 32)
    by_hand = model.fc(torch.flatten(torch.max_pool2d(torch.relu(model.conv1(x)), 2, 2), 1))
    torch.testing.assert_close(model(x), by_hand, rtol=0, atol=0)


def test_deep_cnn_has_six_convs_and_checks_size() -> None:
    model = DeepCNN(in_channels=3, num_classes=10, image_size=32)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 6
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    try:
        DeepCNN(in_channels=1, num_classes=10, image_size=4)
    except ValueError as exc:
        assert "8x8" in str(exc)
    else:
        raise AssertionError("a 4x4 image must be refused by a 3-block DeepCNN")
