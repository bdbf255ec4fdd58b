"""Wide ResNet (Zagoruyko & Komodakis 2016), pre-activation form, CIFAR: WRN-28-10 by default."""

from __future__ import annotations

from torch import nn

from pqd.errors import PQDError
from pqd.models.layers import Add, ConvBN, Normalize, QuantPoint, init_weights, scaled
from pqd.models.registry import register_model


class WideBlock(nn.Module):
    """bn-relu-conv-bn-relu-(dropout)-conv plus shortcut. ``conv1`` is a ConvBN: its batch norm is the block's
    second one, which folds into it at deployment."""

    def __init__(self, cin: int, cout: int, stride: int, dropout: float):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.relu1 = nn.ReLU()
        self.q1 = QuantPoint()
        self.conv1 = ConvBN(cin, cout, 3, stride)
        self.relu2 = nn.ReLU()
        self.dropout = nn.Dropout(dropout)
        self.q2 = QuantPoint()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, padding=1, bias=False)
        self.q3 = QuantPoint()
        self.equal = stride == 1 and cin == cout
        if not self.equal:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False)
            self.q_shortcut = QuantPoint()
        self.add = Add()
        self.q_out = QuantPoint()

    def forward(self, x):
        a = self.q1(self.relu1(self.bn1(x)))
        out = self.q2(self.dropout(self.relu2(self.conv1(a))))
        out = self.q3(self.conv2(out))
        skip = x if self.equal else self.q_shortcut(self.shortcut(a))
        return self.q_out(self.add(out, skip))


class WideResNet(nn.Module):
    def __init__(self, depth=28, widen_factor=10, num_classes=10, dropout=0.0, width=1.0, mean=None, std=None):
        super().__init__()
        if (depth - 4) % 6:
            raise PQDError(f"WRN depth must be 6n+4 (e.g. 16, 22, 28, 40), got {depth}")
        n = (depth - 4) // 6
        chans = [scaled(c, width) for c in (16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor)]
        self.normalize = Normalize(*(a for a in (mean, std) if a is not None))
        self.q_in = QuantPoint()
        self.stem = nn.Conv2d(3, chans[0], 3, 1, padding=1, bias=False)
        self.q_stem = QuantPoint()
        blocks, cin = [], chans[0]
        for i, cout in enumerate(chans[1:]):
            for j in range(n):
                blocks.append(WideBlock(cin, cout, 2 if (i > 0 and j == 0) else 1, dropout))
                cin = cout
        self.layers = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(cin)
        self.relu = nn.ReLU()
        self.q_act = QuantPoint()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.q_pool = QuantPoint()
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(cin, num_classes)
        self.q_logits = QuantPoint()
        init_weights(self)

    def forward(self, x):
        x = self.q_in(self.normalize(x))
        x = self.q_stem(self.stem(x))
        x = self.layers(x)
        x = self.q_act(self.relu(self.bn(x)))
        x = self.flatten(self.q_pool(self.pool(x)))
        return self.q_logits(self.fc(x))


@register_model("wrn28_10")
def wrn28_10(num_classes: int = 10, *, width: float = 1.0, dropout: float = 0.0, depth: int = 28,
             widen_factor: int = 10, mean=None, std=None) -> WideResNet:
    return WideResNet(depth, widen_factor, num_classes, dropout, width, mean, std)
