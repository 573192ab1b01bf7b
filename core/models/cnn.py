"""A compact CNN that trains from scratch on a few thousand small images on a CPU.

Five blocks of 3x3 convolution, batch norm, ReLU and 2x2 max pooling halve the
input five times (64 px -> 2x2 cells). For the regression head the last block's
map is flattened, not pooled, so the head still sees where things are
(landmarks need it); the heatmap head reads the maps of blocks 2-5 (strides 4,
8, 16 and 32) as a feature pyramid.
"""

from __future__ import annotations

import torch
from torch import nn

WIDTHS = (16, 32, 64, 128, 256)


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class SmallCNN(nn.Module):
    """Backbone: (B, 3, S, S) float -> (B, features) with S a multiple of 32
    (:meth:`pyramid`: the maps at strides 4 to 32)."""

    pooled = False  # the regression head flattens the last map

    def __init__(self, image_size: int = 64, widths: tuple[int, ...] = WIDTHS) -> None:
        super().__init__()
        if image_size % 32:
            raise ValueError(f"image size {image_size} is not a multiple of 32")
        chans = (3, *widths)
        self.features = nn.Sequential(*(_block(a, b) for a, b in zip(chans, chans[1:], strict=False)))
        cells = (image_size // 2 ** len(widths)) ** 2
        self.out_features = widths[-1] * cells
        self.channels = list(widths[1:])  # of the pyramid's maps, strides 4 .. 32

    def pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps = []
        for i, block in enumerate(self.features):
            x = block(x)
            if i >= 1:
                maps.append(x)
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.features(x), 1)
