"""ResNet-18, CIFAR form: 3x3 stem, no max-pool, four stages of two basic blocks (He et al. 2016)."""

from __future__ import annotations

from torch import nn

from pqd.models.layers import Add, ConvBN, Normalize, QuantPoint, init_weights, scaled
from pqd.models.registry import register_model


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = ConvBN(cin, cout, 3, stride)
        self.relu1 = nn.ReLU()
        self.q1 = QuantPoint()
        self.conv2 = ConvBN(cout, cout, 3, 1)
        self.q2 = QuantPoint()
        if stride != 1 or cin != cout:
            self.shortcut = ConvBN(cin, cout, 1, stride)
            self.q_shortcut = QuantPoint()
        else:
            self.shortcut = None
        self.add = Add()
        self.relu2 = nn.ReLU()
        self.q_out = QuantPoint()

    def forward(self, x):
        out = self.q1(self.relu1(self.conv1(x)))
        out = self.q2(self.conv2(out))
        skip = x if self.shortcut is None else self.q_shortcut(self.shortcut(x))
        return self.q_out(self.relu2(self.add(out, skip)))


class ResNet(nn.Module):
    def __init__(self, blocks=(2, 2, 2, 2), num_classes: int = 10, width: float = 1.0, mean=None, std=None):
        super().__init__()
        chans = [scaled(c, width) for c in (64, 128, 256, 512)]
        self.normalize = Normalize(*(a for a in (mean, std) if a is not None))
        self.q_in = QuantPoint()
        self.stem = ConvBN(3, chans[0], 3, 1)
        self.stem_relu = nn.ReLU()
        self.q_stem = QuantPoint()
        layers, cin = [], chans[0]
        for i, (n, cout) in enumerate(zip(blocks, chans)):
            for j in range(n):
                layers.append(BasicBlock(cin, cout, 2 if (i > 0 and j == 0) else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.q_pool = QuantPoint()
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(cin, num_classes)
        self.q_logits = QuantPoint()
        init_weights(self)

    def forward(self, x):
        x = self.q_in(self.normalize(x))
        x = self.q_stem(self.stem_relu(self.stem(x)))
        x = self.layers(x)
        x = self.flatten(self.q_pool(self.pool(x)))
        return self.q_logits(self.fc(x))


@register_model("resnet18")
def resnet18(num_classes: int = 10, *, width: float = 1.0, mean=None, std=None) -> ResNet:
    return ResNet((2, 2, 2, 2), num_classes, width, mean, std)
