"""A network as the list of kernels it runs, each with a key that names its shapes.

torch.fx traces the built network (on the meta device: no weights are allocated) and
propagates shapes; every call of a leaf module or a tensor function becomes a ``Unit`` whose
key is the call as written (``repr`` of the module, the function's name, its input shapes
and constant arguments). Two networks that run the same kernel on the same shapes share its
key, so a latency measured once serves every network that runs it (OFA's and FBNet's lookup
tables, at the granularity of the eager kernels instead of hand-listed blocks).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from searchspace.builder import CellModule, Head, Stem
from searchspace.genotype import Genotype
from searchspace.layout import layout

__all__ = ["Unit", "units"]

_EVICT = 16 << 20  # weight copies cycled through: 4x a 4 MB L2 cache, so each call's are cold
_MAX_COPIES = 64


@dataclass(frozen=True)
class Unit:
    """One kernel call of a network: its key and how to run it alone on ``device``."""

    key: str
    replay: Callable[[str], Callable[[], Any]]  # device -> a function that runs the call once


def units(g: Genotype, batch: int = 1) -> list[Unit]:
    """The kernel calls of ``g``'s forward pass at ``batch``, in order (a key may repeat).

    Each distinct cell is traced once (a stage repeats one cell), and remembered across
    networks, since a search meets the same cells again and again.

    Example:
        >>> us = units(searchspace.zoo.get("resnet20"))
        >>> len(us), us[0].key.split(", stride")[0], us[0].key.split(") ")[-1]
        (92, 'Conv2d(3, 16, kernel_size=(3, 3)', '1x3x32x32')
    """
    plan = layout(g)
    st, h = g.stem, g.head
    out = list(_traced(("stem", g.in_channels, st.width, st.kernel, st.stride, st.act, st.norm),
                       (batch, g.in_channels, g.resolution, g.resolution)))
    for cell in plan.cells:
        placed = dataclasses.replace(cell, path="", where="")
        out += _traced(("cell", placed), (batch, cell.c_in, cell.h_in, cell.w_in))
    c, hh, ww = plan.head_in
    out += _traced(("head", c, h.width, h.act, h.preact, h.pool, h.dropout, g.num_classes),
                   (batch, c, hh, ww))
    return out


def _part(spec: tuple) -> nn.Module:
    kind, *args = spec
    if kind == "cell":
        return CellModule(*args)
    return (Stem if kind == "stem" else Head)(*args)


@functools.lru_cache(maxsize=4096)
def _traced(spec: tuple, shape: tuple[int, ...]) -> tuple[Unit, ...]:
    with torch.device("meta"):
        module = _part(spec).eval()
    gm = fx.symbolic_trace(module)
    ShapeProp(gm).propagate(torch.empty(shape, device="meta"))
    return tuple(_unit(gm, node) for node in gm.graph.nodes
                 if node.op in ("call_module", "call_function", "call_method"))


def _shape(node: fx.Node) -> str:
    meta = node.meta.get("tensor_meta")
    return "x".join(map(str, meta.shape)) if meta is not None else "?"


def _arg_text(a: Any) -> str:
    if isinstance(a, fx.Node):
        return _shape(a)
    if isinstance(a, (list, tuple)):
        inner = ",".join(_arg_text(x) for x in a)
        return f"[{inner}]" if isinstance(a, list) else f"({inner})"
    if isinstance(a, slice):
        return f"{a.start}:{a.stop}:{a.step}"
    return repr(a)


def _unit(model: nn.Module, node: fx.Node) -> Unit:
    inputs = " ".join(_arg_text(a) for a in node.args)
    kwargs = " ".join(f"{k}={_arg_text(v)}" for k, v in sorted(node.kwargs.items()))
    if node.op == "call_module":
        module = model.get_submodule(node.target)
        head = repr(module).replace("\n", "")
        return Unit(f"{head} {inputs}".strip(), _module_replay(module, node))
    name = node.target if isinstance(node.target, str) else _function_name(node.target)
    key = f"{node.op[5:]}:{name} {inputs} {kwargs}".strip()
    return Unit(key, _function_replay(node))


def _function_name(f: Callable) -> str:
    return f"{getattr(f, '__module__', None) or ''}.{getattr(f, '__name__', repr(f))}"


def _tensor_like(node: fx.Node, device: str) -> torch.Tensor:
    meta = node.meta["tensor_meta"]
    return torch.rand(meta.shape, dtype=meta.dtype, device=device) + 0.5  # no denormals


def _materialise(a: Any, device: str) -> Any:
    if isinstance(a, fx.Node):
        return _tensor_like(a, device)
    if isinstance(a, (list, tuple)):
        return type(a)(_materialise(x, device) for x in a)
    return a


def _module_replay(module: nn.Module, node: fx.Node) -> Callable[[str], Callable[[], Any]]:
    def replay(device: str) -> Callable[[], Any]:
        size = sum(t.numel() * t.element_size() for t in module.parameters())
        n = min(_MAX_COPIES, -(-_EVICT // max(size, 1)))  # weights cold, as in a network
        copies = [_copy(module, device) for _ in range(n)]
        args = _materialise(node.args, device)
        turn = itertools.cycle(copies)
        return lambda: next(turn)(*args)
    return replay


def _copy(module: nn.Module, device: str) -> nn.Module:
    m = copy.deepcopy(module).to_empty(device=device).eval()
    with torch.no_grad():
        for t in list(m.parameters()) + list(m.buffers()):
            if t.is_floating_point():
                t.uniform_(0.5, 1.0)
    return m


def _function_replay(node: fx.Node) -> Callable[[str], Callable[[], Any]]:
    def replay(device: str) -> Callable[[], Any]:
        args = _materialise(node.args, device)
        kwargs = {k: _materialise(v, device) for k, v in node.kwargs.items()}
        if node.op == "call_method":
            return lambda: getattr(args[0], node.target)(*args[1:], **kwargs)
        return lambda: node.target(*args, **kwargs)
    return replay
