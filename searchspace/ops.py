"""The primitive ops, registered by name; each knows its module, its cost and the fields it uses.

Every op has the same entry points, side by side: ``build(spec) -> nn.Module`` and
``cost(spec, path) -> list[Layer]`` called with an ``OpSpec`` (the node and its shapes), and
``export(node, c, out, stride) -> str``, the constructor call a standalone export writes, with
``runtime``, the classes that call needs. Cost mirrors construction line for line (pycls's
``complexity`` next to ``__init__``); ``widens`` says whether a node's width sets its output
channels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from searchspace.genotype import GenotypeError, Node

__all__ = ["OPS", "Op", "OpSpec", "Layer", "get", "activation", "channels", "round_channels"]


@dataclass(frozen=True)
class OpSpec:
    """A node placed in a network: its input/output channels, stride and output size."""

    node: Node
    c_in: int  # channels after the node's inputs are combined
    c_out: int
    stride: int  # 1, or 2 when the node is strided in a reducing cell
    h_out: int
    w_out: int
    base: int  # channels that the node's width ratio multiplies


@dataclass(frozen=True)
class Layer:
    """One counted layer: what it is, its output shape, multiply-adds and parameters."""

    name: str  # module path inside the built network
    kind: str  # Conv2d, Linear, BatchNorm2d, ...
    shape: tuple[int, int, int]  # output (channels, height, width)
    madds: int
    params: int


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


def conv_layer(name: str, c_in: int, c_out: int, k: int, groups: int, h: int, w: int,
               bias: bool = False) -> Layer:
    """A k x k convolution's count: d'(k^2 d/g [+ 1]) per output position."""
    per_position = c_out * (k * k * c_in // groups + int(bias))
    params = c_out * k * k * c_in // groups + (c_out if bias else 0)
    return Layer(name, "Conv2d", (c_out, h, w), per_position * h * w, params)


def bn_layer(name: str, c: int, h: int, w: int) -> Layer:
    """Batch norm: two parameters a channel, no multiply-adds by convention."""
    return Layer(name, "BatchNorm2d", (c, h, w), 0, 2 * c)


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


class SepConv(nn.Module):
    """Depthwise k x k, BN, act, pointwise 1x1, BN, act (MobileNetV1's separable conv)."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int, act: str) -> None:
        super().__init__()
        self.dw = nn.Conv2d(c_in, c_in, k, stride, k // 2, groups=c_in, bias=False)
        self.bn1 = nn.BatchNorm2d(c_in)
        self.act1 = activation(act)
        self.pw = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.act2 = activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act2(self.bn2(self.pw(self.act1(self.bn1(self.dw(x))))))


class ReLUConvBN(nn.Module):
    """ReLU, k x k conv, BN: the DARTS / NAS-Bench-201 order (the ReLU must not be in place:
    the input feeds other edges too)."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int) -> None:
        super().__init__()
        self.act = nn.ReLU(inplace=False)
        self.conv = nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(self.act(x)))


class Zero(nn.Module):
    """Zeros shaped like the input (subsampled when strided): an edge that carries nothing."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return torch.zeros_like(x)


class SqueezeExcite(nn.Module):
    """Channel gating: pool, 1x1 reduce, act, 1x1 expand, sigmoid, scale (Hu et al.)."""

    def __init__(self, c: int, squeeze: int, act: str) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(c, squeeze, 1)
        self.act = activation(act)
        self.expand = nn.Conv2d(squeeze, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.expand(self.act(self.reduce(s))))


def pool(kind: str, k: int, stride: int) -> nn.Module:
    """A k x k pool whose output side is ceil(side / stride), as every op here."""
    cls = nn.MaxPool2d if kind == "max" else nn.AvgPool2d
    extra = {} if kind == "max" else {"count_include_pad": False}
    return cls(k, stride, (k - 1) // 2, ceil_mode=k % 2 == 0, **extra)


@dataclass(frozen=True)
class Op:
    """A registered primitive."""

    name: str
    uses: frozenset[str]  # Node fields the op reads; the others must keep their defaults
    build: Callable[[OpSpec], nn.Module]
    cost: Callable[[OpSpec, str], list[Layer]]  # (spec, module path) -> counted layers
    export: Callable[[Node, str, str, str], str]  # (node, c_in, c_out, stride) expressions
    runtime: tuple = ()  # the classes and functions an exported constructor call needs
    widens: bool = False  # the node's width sets the output channels (else: the input's)
    rule: Callable[[Node, str], None] = lambda node, where: None  # extra checks

    def check(self, node: Node, where: str) -> None:
        """Raise GenotypeError when the node sets a field this op does not use."""
        defaults = Node(inputs=(0,), op=node.op)
        for name in ("kernel", "width", "width_of", "depthwise", "strided", "act", "preact"):
            if name not in self.uses and getattr(node, name) != getattr(defaults, name):
                raise GenotypeError(f"{where}.{name}: {self.name} does not take {name}")
        self.rule(node, where)

    def out_channels(self, node: Node, c_in: int, base: int) -> int:
        """Output channels for ``c_in`` combined input channels; ``base`` multiplies width."""
        if self.widens and node.width is not None:
            return channels(node.width, base)
        return c_in


# --- conv ---------------------------------------------------------------------------------


def _conv_rule(node: Node, where: str) -> None:
    if node.kernel < 1 or node.kernel % 2 == 0:
        raise GenotypeError(f"{where}.kernel: convolution kernels are odd, got {node.kernel}")
    if node.depthwise and (node.width is not None or node.width_of != "out"):
        raise GenotypeError(f"{where}.width: a depthwise conv keeps its input's channels")


def _conv_build(s: OpSpec) -> nn.Module:
    groups = s.c_in if s.node.depthwise else 1
    return ConvBN(s.c_in, s.c_out, s.node.kernel, s.stride, groups, s.node.act, s.node.preact)


def _conv_export(node: Node, c: str, out: str, stride: str) -> str:
    groups = c if node.depthwise else "1"
    return f"ConvBN({c}, {out}, {node.kernel}, {stride}, {groups}, {node.act!r}, {node.preact})"


def _conv_cost(s: OpSpec, path: str) -> list[Layer]:
    groups = s.c_in if s.node.depthwise else 1
    h_in, w_in = s.h_out * s.stride, s.w_out * s.stride
    conv = conv_layer(f"{path}.conv", s.c_in, s.c_out, s.node.kernel, groups, s.h_out, s.w_out)
    if s.node.preact:
        return [bn_layer(f"{path}.bn", s.c_in, h_in, w_in), conv]
    return [conv, bn_layer(f"{path}.bn", s.c_out, s.h_out, s.w_out)]


# --- sepconv ------------------------------------------------------------------------------


def _sepconv_build(s: OpSpec) -> nn.Module:
    return SepConv(s.c_in, s.c_out, s.node.kernel, s.stride, s.node.act)


def _sepconv_cost(s: OpSpec, path: str) -> list[Layer]:
    h, w = s.h_out, s.w_out
    return [
        conv_layer(f"{path}.dw", s.c_in, s.c_in, s.node.kernel, s.c_in, h, w),
        bn_layer(f"{path}.bn1", s.c_in, h, w),
        conv_layer(f"{path}.pw", s.c_in, s.c_out, 1, 1, h, w),
        bn_layer(f"{path}.bn2", s.c_out, h, w),
    ]


def _sepconv_export(node: Node, c: str, out: str, stride: str) -> str:
    return f"SepConv({c}, {out}, {node.kernel}, {stride}, {node.act!r})"


# --- reluconv (NAS-Bench-201's nor_conv) ---------------------------------------------------------


def _reluconv_build(s: OpSpec) -> nn.Module:
    return ReLUConvBN(s.c_in, s.c_out, s.node.kernel, s.stride)


def _reluconv_cost(s: OpSpec, path: str) -> list[Layer]:
    return [conv_layer(f"{path}.conv", s.c_in, s.c_out, s.node.kernel, 1, s.h_out, s.w_out),
            bn_layer(f"{path}.bn", s.c_out, s.h_out, s.w_out)]


def _reluconv_export(node: Node, c: str, out: str, stride: str) -> str:
    return f"ReLUConvBN({c}, {out}, {node.kernel}, {stride})"


def _odd(node: Node, where: str) -> None:
    if node.kernel < 1 or node.kernel % 2 == 0:
        raise GenotypeError(f"{where}.kernel: convolution kernels are odd, got {node.kernel}")


# --- pools, identity, squeeze-excite --------------------------------------------------------


def _pool_rule(node: Node, where: str) -> None:
    if node.kernel not in (2, 3):
        raise GenotypeError(f"{where}.kernel: pools take kernel 2 or 3, got {node.kernel}")


def _pool_build(kind: str) -> Callable[[OpSpec], nn.Module]:
    return lambda s: pool(kind, s.node.kernel, s.stride)


def _pool_export(kind: str) -> Callable[[Node, str, str, str], str]:
    return lambda node, c, out, stride: f"pool({kind!r}, {node.kernel}, {stride})"


def _no_cost(s: OpSpec, path: str) -> list[Layer]:
    return []


def _se_rule(node: Node, where: str) -> None:
    if node.width is None:
        raise GenotypeError(f"{where}.width: se needs a squeeze width")


def _se_build(s: OpSpec) -> nn.Module:
    return SqueezeExcite(s.c_out, _se_squeeze(s), s.node.act)


def _se_squeeze(s: OpSpec) -> int:
    return channels(s.node.width or 1.0, s.base)


def _se_export(node: Node, c: str, out: str, stride: str) -> str:
    base = "width" if node.width_of == "out" else "c_in"
    return f"SqueezeExcite({c}, channels({node.width!r}, {base}), {node.act!r})"


def _se_cost(s: OpSpec, path: str) -> list[Layer]:
    r = _se_squeeze(s)
    return [
        conv_layer(f"{path}.reduce", s.c_out, r, 1, 1, 1, 1, bias=True),
        conv_layer(f"{path}.expand", r, s.c_out, 1, 1, 1, 1, bias=True),
    ]


_CONV_FIELDS = frozenset({"kernel", "width", "width_of", "depthwise", "strided", "act", "preact"})

OPS: dict[str, Op] = {
    "conv": Op("conv", _CONV_FIELDS, _conv_build, _conv_cost, _conv_export, (ConvBN,),
               widens=True, rule=_conv_rule),
    "sepconv": Op("sepconv", frozenset({"kernel", "width", "width_of", "strided", "act"}),
                  _sepconv_build, _sepconv_cost, _sepconv_export, (SepConv,), widens=True,
                  rule=_odd),
    "reluconv": Op("reluconv", frozenset({"kernel", "width", "width_of", "strided"}),
                   _reluconv_build, _reluconv_cost, _reluconv_export, (ReLUConvBN,),
                   widens=True, rule=_odd),
    "maxpool": Op("maxpool", frozenset({"kernel", "strided"}), _pool_build("max"), _no_cost,
                  _pool_export("max"), (pool,), rule=_pool_rule),
    "avgpool": Op("avgpool", frozenset({"kernel", "strided"}), _pool_build("avg"), _no_cost,
                  _pool_export("avg"), (pool,), rule=_pool_rule),
    "identity": Op("identity", frozenset(), lambda s: nn.Identity(), _no_cost,
                   lambda node, c, out, stride: "nn.Identity()"),
    "zero": Op("zero", frozenset({"strided"}), lambda s: Zero(s.stride), _no_cost,
               lambda node, c, out, stride: f"Zero({stride})", (Zero,)),
    "se": Op("se", frozenset({"width", "width_of", "act"}), _se_build, _se_cost, _se_export,
             (SqueezeExcite,), rule=_se_rule),
}


def get(name: str) -> Op:
    """The op registered under ``name``; the error lists the known ones."""
    try:
        return OPS[name]
    except KeyError:
        raise KeyError(f"unknown op {name!r} (known: {', '.join(sorted(OPS))})") from None


def round_channels(value: float, divisor: int = 8) -> int:
    """Nearest multiple of ``divisor``, never below it nor 10% under ``value`` (timm's rule)."""
    out = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * value else out
