"""Genotype -> torch.nn.Module, with deterministic module names.

Names follow the layout: ``stem.conv``, ``stages.<stage>.<cell>.n<node>.<part>``,
``stages.<s>.<c>.shortcut``, ``head.fc``; so weights saved from one build load into another
and into an exported file.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from searchspace.genotype import Genotype
from searchspace.layout import CellPlan, layout
from searchspace.ops import OPS, activation

__all__ = ["build", "Network", "CellModule", "shortcut", "PoolProject"]


def build(g: Genotype) -> nn.Module:
    """A freshly initialised network for ``g``.

    Example:
        >>> model = build(searchspace.zoo.get("resnet20"))
        >>> model(torch.zeros(1, 3, 32, 32)).shape
        torch.Size([1, 10])
    """
    return Network(g)


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


def _merge(xs: list[torch.Tensor], how: str) -> torch.Tensor:
    if len(xs) == 1:
        return xs[0]
    if how == "concat":
        return torch.cat(xs, 1)
    out = xs[0]
    for x in xs[1:]:
        out = out + x
    return out


class CellModule(nn.Module):
    """One placed cell: nodes ``n1..nN`` in order, then outputs, residual and act."""

    def __init__(self, plan: CellPlan) -> None:
        super().__init__()
        cell = plan.cell
        self.inputs = [n.inputs for n in cell.nodes]
        self.combines = [n.combine for n in cell.nodes]
        self.outputs, self.combine = cell.outputs, cell.combine
        for i, spec in enumerate(plan.specs):
            self.add_module(f"n{i + 1}", OPS[spec.node.op].build(spec))
        self.shortcut = shortcut(cell.residual, plan.c_in, plan.c_out, plan.stride)
        self.act = activation(cell.act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states = [x]
        for i, (ins, how) in enumerate(zip(self.inputs, self.combines)):
            op = getattr(self, f"n{i + 1}")
            states.append(op(_merge([states[n] for n in ins], how)))
        out = _merge([states[n] for n in self.outputs], self.combine)
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return self.act(out)


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


class Network(nn.Module):
    """stem -> stages of cells -> head."""

    def __init__(self, g: Genotype) -> None:
        super().__init__()
        self.genotype = g
        plan = layout(g)
        st, h = g.stem, g.head
        self.stem = Stem(g.in_channels, st.width, st.kernel, st.stride, st.act, st.norm)
        self.stages = nn.ModuleList(
            nn.Sequential(*(CellModule(c) for c in stage)) for stage in plan.stages
        )
        self.head = Head(plan.head_in[0], h.width, h.act, h.preact, h.pool, h.dropout,
                         g.num_classes)
        _init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.head(x)


def _init(model: nn.Module) -> None:
    """Kaiming-normal convs (fan-out), unit BN, small classifier: the torchvision defaults."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)
