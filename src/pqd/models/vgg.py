"""VGG-16 with batch norm, CIFAR form: 13 conv+BN+ReLU, 5 max-pools, one linear head (Simonyan & Zisserman 2015)."""

from __future__ import annotations

from torch import nn

from pqd.models.layers import ConvBN, Normalize, QuantPoint, init_weights, scaled
from pqd.models.registry import register_model

VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class ConvUnit(nn.Module):
    """ConvBN + ReLU, optionally followed by 2x2 max-pooling (which keeps int8 values on their grid, so the
    same quantizer re-applies after it)."""

    def __init__(self, cin: int, cout: int, pool: bool):
        super().__init__()
        self.conv = ConvBN(cin, cout, 3, 1)
        self.relu = nn.ReLU()
        self.q = QuantPoint()
        self.pool = nn.MaxPool2d(2) if pool else None

    def forward(self, x):
        x = self.q(self.relu(self.conv(x)))
        if self.pool is not None:
            x = self.q.requantize(self.pool(x))
        return x


class VGG(nn.Module):
    def __init__(self, cfg=VGG16, num_classes=10, width=1.0, mean=None, std=None):
        super().__init__()
        self.normalize = Normalize(*(a for a in (mean, std) if a is not None))
        self.q_in = QuantPoint()
        units, cin = [], 3
        for i, v in enumerate(cfg):
            if v == "M":
                continue
            pool = i + 1 < len(cfg) and cfg[i + 1] == "M"
            cout = scaled(v, width)
            units.append(ConvUnit(cin, cout, pool))
            cin = cout
        self.features = nn.Sequential(*units)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(cin, num_classes)
        self.q_logits = QuantPoint()
        init_weights(self)

    def forward(self, x):
        x = self.features(self.q_in(self.normalize(x)))
        return self.q_logits(self.fc(self.flatten(x)))


@register_model("vgg16_bn")
def vgg16_bn(num_classes: int = 10, *, width: float = 1.0, mean=None, std=None) -> VGG:
    return VGG(VGG16, num_classes, width, mean, std)
