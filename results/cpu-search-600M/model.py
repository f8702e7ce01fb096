"""searched-scaled: a standalone PyTorch model exported by nas.

Multiply-adds: 594,881,938 (594.88M) at 56x56; parameters: 1,251,946.
Found by: evolution search over the cells space, 11 scored trials by proxy-cpu (best 43.40%
validation accuracy at 27.8M), compound-scaled to 600M-madds.
Genotype key: 5f819e644c81f302. Needs only torch.

    model = build_model()
    logits = model(images)  # images: (N, 3, 56, 56), normalised per channel
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

RESOLUTION = 56
NUM_CLASSES = 10
MEAN = (0.4914, 0.4822, 0.4465)  # CIFAR-10 per-channel mean and std of the inputs
STD = (0.2470, 0.2435, 0.2616)


class ConvBN(nn.Module):
    """conv-BN-act, or BN-act-conv with preact; groups = channels when depthwise."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int, groups: int, act: str,
                 preact: bool) -> None:
        super().__init__()
        self.preact = preact
        self.bn = nn.BatchNorm2d(c_in if preact else c_out)
        self.act = activation(act)
        self.conv = nn.Conv2d(c_in, c_out, k, stride, k // 2, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.preact:
            return self.conv(self.act(self.bn(x)))
        return self.act(self.bn(self.conv(x)))


def activation(name: str) -> nn.Module:
    """The activation module for a genotype's act name."""
    return {
        "none": nn.Identity,
        "relu": lambda: nn.ReLU(inplace=True),
        "relu6": lambda: nn.ReLU6(inplace=True),
        "swish": lambda: nn.SiLU(inplace=True),
    }[name]()


def channels(width: float, base: int) -> int:
    """Channels for a width ratio: round half up, at least 1 (stated once, used everywhere)."""
    return max(1, int(width * base + 0.5))


class Stem(nn.Module):
    """conv, optional BN, act."""

    def __init__(self, c_in: int, width: int, kernel: int, stride: int, act: str,
                 norm: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, width, kernel, stride, kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(width) if norm else nn.Identity()
        self.act = activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class PadShortcut(nn.Module):
    """Parameter-free shortcut: subsample, then zero-pad channels (CIFAR ResNets' option A)."""

    def __init__(self, stride: int, extra: int) -> None:
        super().__init__()
        self.stride, self.extra = stride, extra

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra))


class ProjectShortcut(nn.Module):
    """1x1 conv with stride, then BN (ResNet's option B)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 1, stride, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class PoolProject(nn.Module):
    """2x2 average pool when strided, then a 1x1 conv (no BN) when channels change
    (NAS-Bench-201's reduction shortcut)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.pool = (nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False)
                     if stride > 1 else nn.Identity())
        self.conv = nn.Conv2d(c_in, c_out, 1, bias=False) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.pool(x))


def shortcut(residual: str, c_in: int, c_out: int, stride: int) -> nn.Module | None:
    """What carries the cell input to the residual add; None when nothing is added."""
    same = c_in == c_out and stride == 1
    if residual == "none" or (residual == "identity" and not same):
        return None
    if same:
        return nn.Identity()
    if residual == "pad":
        return PadShortcut(stride, c_out - c_in)
    if residual == "avgproject":
        return PoolProject(c_in, c_out, stride)
    return ProjectShortcut(c_in, c_out, stride)


class Head(nn.Module):
    """Optional 1x1 conv-BN-act (or preact BN-act), global pool, dropout, classifier."""

    def __init__(self, c: int, width: int | None, act: str, preact: bool, pool: str,
                 dropout: float, num_classes: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, width, 1, bias=False) if width else nn.Identity()
        c = width or c
        self.bn = nn.BatchNorm2d(c) if (width or preact) else nn.Identity()
        self.act = activation(act) if (width or preact) else nn.Identity()
        self.max = pool == "max"
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn(self.conv(x)))
        x = x.amax((2, 3)) if self.max else x.mean((2, 3))
        return self.fc(self.dropout(x))


class Cell0(nn.Module):
    """5 nodes (n1=conv1, n2=conv5, n3=conv5, n4=conv1, n5=conv3); outputs [0, 4, 5]; residual
    none.
    """

    def __init__(self, c_in: int, width: int, stride: int) -> None:
        super().__init__()
        c0 = c_in
        self.n1 = ConvBN(c0, channels(1.0, width), 1, 1, 1, 'relu', False)
        c1 = channels(1.0, width)
        self.n2 = ConvBN(c1, c1, 5, 1, c1, 'relu', False)
        c2 = c1
        self.n3 = ConvBN(c2, c2, 5, 1, c2, 'relu', False)
        c3 = c2
        self.n4 = ConvBN(c3, channels(0.125, width), 1, 1, 1, 'none', False)
        c4 = channels(0.125, width)
        self.n5 = ConvBN(c0, channels(0.125, width), 3, 1, 1, 'none', False)
        c5 = channels(0.125, width)
        self.shortcut = shortcut('none', c_in, c0 + c4 + c5, stride)
        self.act = activation('relu')

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        x1 = self.n1(x0)
        x2 = self.n2(x1)
        x3 = self.n3(x2)
        x4 = self.n4(x3)
        x5 = self.n5(x0)
        out = torch.cat([x0, x4, x5], 1)
        if self.shortcut is not None:
            out = out + self.shortcut(x0)
        return self.act(out)


class Cell1(nn.Module):
    """5 nodes (n1=conv1, n2=conv5, n3=conv5, n4=conv1, n5=conv3); outputs [4, 5]; residual
    none.
    """

    def __init__(self, c_in: int, width: int, stride: int) -> None:
        super().__init__()
        c0 = c_in
        self.n1 = ConvBN(c0, channels(1.0, width), 1, 1, 1, 'relu', False)
        c1 = channels(1.0, width)
        self.n2 = ConvBN(c1, c1, 5, stride, c1, 'relu', False)
        c2 = c1
        self.n3 = ConvBN(c2, c2, 5, 1, c2, 'relu', False)
        c3 = c2
        self.n4 = ConvBN(c3, channels(0.5, width), 1, 1, 1, 'none', False)
        c4 = channels(0.5, width)
        self.n5 = ConvBN(c0, channels(0.5, width), 3, stride, 1, 'none', False)
        c5 = channels(0.5, width)
        self.shortcut = shortcut('none', c_in, c4 + c5, stride)
        self.act = activation('relu')

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        x1 = self.n1(x0)
        x2 = self.n2(x1)
        x3 = self.n3(x2)
        x4 = self.n4(x3)
        x5 = self.n5(x0)
        out = torch.cat([x4, x5], 1)
        if self.shortcut is not None:
            out = out + self.shortcut(x0)
        return self.act(out)


class Network(nn.Module):
    """stem -> stages of cells -> head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = Stem(3, 72, 3, 1, 'relu', True)
        self.stages = nn.ModuleList([
            nn.Sequential(  # stage 0
                Cell0(72, 72, 1),
                Cell0(90, 72, 1),
                Cell0(108, 72, 1),
                Cell0(126, 72, 1),
            ),
            nn.Sequential(  # stage 1
                Cell1(144, 72, 2),
                Cell0(72, 72, 1),
                Cell0(90, 72, 1),
                Cell0(108, 72, 1),
                Cell0(126, 72, 1),
            ),
            nn.Sequential(  # stage 2
                Cell1(144, 144, 2),
                Cell0(144, 144, 1),
                Cell0(180, 144, 1),
                Cell0(216, 144, 1),
                Cell0(252, 144, 1),
                Cell0(288, 144, 1),
                Cell0(324, 144, 1),
                Cell0(360, 144, 1),
                Cell0(396, 144, 1),
                Cell0(432, 144, 1),
            ),
        ])
        self.head = Head(468, None, 'relu', False, 'avg', 0.0, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.head(x)


def build_model(weights: str | None = None) -> Network:
    """The network; with ``weights`` (a state_dict file, or a nas checkpoint) loaded."""
    model = Network()
    if weights is not None:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        model.load_state_dict(state.get("state_dict", state))
    return model
