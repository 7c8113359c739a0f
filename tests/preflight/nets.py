"""Data and a healthy model shared by the preflight tests; each bug's model lives in the test
file of the check that must catch it."""

from __future__ import annotations

import torch
from torch import Tensor, nn

Batch = tuple[Tensor, Tensor]

#: The tiny data's shape: 1 channel, 8x8, 3 classes.
CHANNELS, SIZE, CLASSES = 1, 8, 3


def tiny_batches(n: int = 96, batch_size: int = 32, seed: int = 0) -> list[Batch]:
    """Normalised images where class k is a bright k-th band, in batches; balanced labels."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % CLASSES
    images = 0.3 * torch.randn(n, CHANNELS, SIZE, SIZE, generator=g)
    band = SIZE // CLASSES
    for k in range(CLASSES):
        images[labels == k, :, k * band : (k + 1) * band, :] += 1.0
    images = (images - images.mean()) / images.std()
    starts = range(0, n, batch_size)
    return [(images[i : i + batch_size], labels[i : i + batch_size]) for i in starts]


class Block(nn.Module):
    """conv-BN-ReLU-conv-BN plus the input, then ReLU: (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(y)) + x)  # the same ReLU module, called twice


class TinyResNet(nn.Module):
    """A healthy residual CNN with batch norm and dropout, unlike SimpleCNN in every way."""

    def __init__(self, width: int = 8, classes: int = CLASSES) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(CHANNELS, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        self.blocks = nn.Sequential(Block(width), Block(width))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(0.1)
        self.head = nn.Linear(width, classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool(self.blocks(self.stem(x))).flatten(1)  # (B, width)
        return self.head(self.drop(x))  # (B, classes)
