"""The article's CNN: Conv2d -> ReLU -> MaxPool -> flatten -> Linear."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["SimpleCNN"]


class SimpleCNN(nn.Module):
    """Build the article's CNN, sized from the data.

    ``Conv2d(C, 16, 3, stride=1, padding=1) -> ReLU -> MaxPool2d(2, 2) -> flatten ->
    Linear(16 * (H // 2) * (W // 2), num_classes)``. On 3x32x32 inputs with 10 classes the
    parameters are ``conv1.weight [16, 3, 3, 3]``, ``conv1.bias [16]``,
    ``fc.weight [10, 4096]`` and ``fc.bias [10]``, exactly as in the article.

    Args:
        in_channels: image channels C.
        num_classes: number of output logits.
        image_size: input height and width (an int for square images).

    >>> model = SimpleCNN(in_channels=3, num_classes=10, image_size=32)
    >>> [tuple(p.shape) for p in model.parameters()]
    [(16, 3, 3, 3), (16,), (10, 4096), (10,)]
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 10,
        image_size: int | tuple[int, int] = 32,
    ) -> None:
        super().__init__()
        h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
        self.conv1 = nn.Conv2d(in_channels, 16, kernel_size=3, stride=1, padding=1)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.fc = nn.Linear(16 * (h // 2) * (w // 2), num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool(self.relu(self.conv1(x)))  # (B, 16, H/2, W/2)
        x = torch.flatten(x, 1)  # (B, 16 * H/2 * W/2)
        return self.fc(x)  # (B, num_classes)
