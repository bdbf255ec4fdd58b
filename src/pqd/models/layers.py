"""Building blocks shared by every model family.

The models are written so that the quantization stage can see every place the deployed INT8 model has a
tensor in int8: each such place holds a ``QuantPoint`` (a no-op in FP32). Every ReLU is a module, every residual
addition is an ``Add`` module and every pooling step is a module. A convolution followed by batch norm is a
``ConvBN``, the unit that INT8 deployment folds into one integer convolution.
"""

from __future__ import annotations

import torch
from torch import nn


class Normalize(nn.Module):
    """Per-channel (x - mean) / std, inside the model so that the exported graph takes RGB in [0, 1]."""

    def __init__(self, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class QuantPoint(nn.Identity):
    """Marks a tensor that is int8 in the deployed model. Identity in FP32; the quantize stage swaps it for a
    fake quantizer. ``requantize`` re-applies the same quantizer (used after max-pooling, which keeps values on the
    grid) without observing."""

    def requantize(self, x: torch.Tensor) -> torch.Tensor:
        return self(x)


class Add(nn.Module):
    """Residual addition as a module, so that it is visible to inspection and export."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b


class ConvBN(nn.Module):
    """Conv2d (no bias) followed by BatchNorm2d: one integer convolution once deployed."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


def scaled(channels: int, width: float) -> int:
    """Channel count scaled by ``width`` (at least 1)."""
    return max(1, int(round(channels * width)))


def init_weights(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)
