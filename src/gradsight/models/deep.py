"""A deeper VGG-style CNN for the "deep network" case, where gradients can vanish."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["DeepCNN"]


class ConvBlock(nn.Module):
    """Two 3x3 convolutions with ReLU, then a 2x2 max-pool: (B, C, H, W) -> (B, F, H/2, W/2)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(self.relu2(self.conv2(self.relu1(self.conv1(x)))))


class DeepCNN(nn.Module):
    """Build a VGG-style CNN of ``len(widths)`` conv blocks, global average pool and a linear head.

    With the default widths (32, 64, 128) it has 6 conv layers and needs images of at least
    8x8. No batch norm, on purpose: the plain stack shows gradients shrinking layer by layer.

    Args:
        in_channels: image channels C.
        num_classes: number of output logits.
        image_size: input height and width; checked against the number of pooling stages.
        widths: output channels of each block.
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 10,
        image_size: int | tuple[int, int] = 32,
        widths: tuple[int, ...] = (32, 64, 128),
    ) -> None:
        super().__init__()
        h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
        if min(h, w) < 2 ** len(widths):
            raise ValueError(
                f"DeepCNN with {len(widths)} blocks needs images of at least "
                f"{2 ** len(widths)}x{2 ** len(widths)}, got {h}x{w}"
            )
        chans = (in_channels, *widths)
        self.blocks = nn.Sequential(
            *(ConvBlock(chans[i], chans[i + 1]) for i in range(len(widths)))
        )
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[-1], num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.blocks(x)  # (B, widths[-1], H / 2**n, W / 2**n)
        x = torch.flatten(self.gap(x), 1)  # (B, widths[-1])
        return self.fc(x)  # (B, num_classes)
