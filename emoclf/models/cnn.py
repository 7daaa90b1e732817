"""A compact CNN trained from scratch: VGG-style conv blocks, BatchNorm, GAP and a dropout head."""
from __future__ import annotations

from typing import List, Sequence

import torch
import torch.nn as nn

from emoclf.models.registry import register_model


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    return nn.BatchNorm2d(channels)


def _block(cin: int, cout: int, pool: bool, norm: str) -> nn.Sequential:
    layers = [
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), _norm(norm, cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), _norm(norm, cout), nn.ReLU(inplace=True),
    ]
    if pool:  # ceil_mode: an odd map (5 x 5 of a 40 px input) keeps its last row and column (3 x 3, not 2 x 2)
        layers.append(nn.MaxPool2d(2, ceil_mode=True))
    return nn.Sequential(*layers)


def block_channels(width: int, depth: int) -> List[int]:
    """The channels of each block when no list is given: ``width`` doubling per block, capped at 512."""
    return [min(width * 2 ** i, 512) for i in range(depth)]


class EmotionCNN(nn.Module):
    """Blocks of two 3x3 convs, each but the last halving the side, then GAP and a linear head. ``channels`` gives
    each block's channels; without it, ``depth`` blocks of ``width`` channels doubling per block (capped at 512)."""

    def __init__(self, num_classes: int, in_channels: int = 1, width: int = 32, depth: int = 4, dropout: float = 0.3,
                 norm: str = "batch", channels: Sequence[int] = ()):
        super().__init__()
        widths = list(channels) or block_channels(width, depth)
        blocks, cin = [], in_channels
        for i, cout in enumerate(widths):
            blocks.append(_block(cin, cout, pool=i < len(widths) - 1, norm=norm))
            cin = cout
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(cin, num_classes))
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)))


@register_model("cnn")
def build_cnn(num_classes: int, in_channels: int = 1, width: int = 32, depth: int = 4, dropout: float = 0.3,
              norm: str = "batch", channels: Sequence[int] = (), **_ignored) -> nn.Module:
    """The from-scratch CNN."""
    return EmotionCNN(num_classes, in_channels, width=width, depth=depth, dropout=dropout, norm=norm,
                      channels=channels)
