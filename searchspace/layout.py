"""Shapes of a genotype: every cell placed with its channels, strides and sides.

One walk that validation, the cost counter, the builder and the exporter share, so they
cannot disagree about a shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from searchspace.genotype import Cell, GenotypeError, pruned_cell
from searchspace.limits import MAX_CHANNELS
from searchspace.ops import OPS, OpSpec

if TYPE_CHECKING:
    from searchspace.genotype import Genotype

__all__ = ["Layout", "CellPlan", "layout"]


@dataclass(frozen=True)
class CellPlan:
    """One cell in place."""

    path: str  # module path, e.g. "stages.1.0"
    where: str  # genotype field, e.g. "stages[1].reduce_cell"
    cell: Cell
    stride: int  # 1, or 2 for a stage's first cell
    c_in: int
    h_in: int
    w_in: int
    specs: tuple[OpSpec, ...]  # specs[i] places cell.nodes[i]
    c_out: int
    h_out: int
    w_out: int
    shortcut: str  # none | identity | pad | project: what the residual link does here


@dataclass(frozen=True)
class Layout:
    """The whole network in place."""

    stem: tuple[int, int, int]  # (channels, height, width) after the stem
    stages: tuple[tuple[CellPlan, ...], ...]
    head_in: tuple[int, int, int]  # what the head receives

    @property
    def cells(self) -> list[CellPlan]:
        """Every cell in forward order."""
        return [c for stage in self.stages for c in stage]


def _side(side: int, stride: int) -> int:
    return math.ceil(side / stride)


def layout(g: Genotype, prune: bool = True) -> Layout:
    """Place every cell of ``g``; raises GenotypeError naming the field whose shapes clash.

    With ``prune`` (the default) cells are placed without their dead nodes, as they are built
    and counted; ``prune=False`` places every node as written (validation; the way
    NAS-Bench-201's own code builds and counts its cells).
    """
    h = w = _side(g.resolution, g.stem.stride)
    c = g.stem.width
    stem = (c, h, w)
    stages = []
    for s, stage in enumerate(g.stages):
        plans = []
        for j in range(stage.depth):
            first = j == 0
            reduce = first and stage.stride == 2 and stage.reduce_cell is not None
            cell = stage.reduce_cell if reduce else stage.cell
            where = f"stages[{s}].{'reduce_cell' if reduce else 'cell'}"
            stride = stage.stride if first else 1
            cell = pruned_cell(cell) if prune else cell
            plan = _place(cell, f"stages.{s}.{j}", where, stride, c, h, w, stage.width)
            plans.append(plan)
            c, h, w = plan.c_out, plan.h_out, plan.w_out
        stages.append(tuple(plans))
    return Layout(stem, tuple(stages), (c, h, w))


def _place(cell: Cell, path: str, where: str, stride: int, c_in: int, h_in: int, w_in: int,
           width: int) -> CellPlan:
    chans, sides = [c_in], [(h_in, w_in)]
    specs = []
    for i, node in enumerate(cell.nodes):
        at = f"{where}.nodes[{i}]"
        c = _combine([chans[n] for n in node.inputs], node.combine, f"{at}.inputs")
        h, w = sides[node.inputs[0]]
        s = stride if node.strided else 1
        if node.op in ("maxpool", "avgpool") and node.kernel == 2 and s == 1:
            raise GenotypeError(f"{at}.kernel: a 2x2 pool needs stride 2, and this cell also "
                                "runs at stride 1 (use kernel 3, or put it in a reduce_cell)")
        base = width if node.width_of == "out" else c_in
        c_out = _most(OPS[node.op].out_channels(node, c, base), at)
        spec = OpSpec(node, c, c_out, s, _side(h, s), _side(w, s), base)
        specs.append(spec)
        chans.append(c_out)
        sides.append((spec.h_out, spec.w_out))
    c_out = _most(_combine([chans[n] for n in cell.outputs], cell.combine, f"{where}.outputs"),
                  f"{where}.outputs")
    h_out, w_out = sides[cell.outputs[0]]
    shortcut = _shortcut(cell.residual, c_in, c_out, stride, f"{where}.residual")
    return CellPlan(path, where, cell, stride, c_in, h_in, w_in, tuple(specs), c_out, h_out,
                    w_out, shortcut)


def _most(channels: int, where: str) -> int:
    """``channels``, or GenotypeError past MAX_CHANNELS (concatenations grow fast)."""
    if channels > MAX_CHANNELS:
        raise GenotypeError(f"{where}: {channels:,} channels, over the limit of {MAX_CHANNELS:,}")
    return channels


def _combine(chans: list[int], how: str, where: str) -> int:
    if how == "concat" or len(chans) == 1:
        return sum(chans)
    if len(set(chans)) > 1:
        raise GenotypeError(f"{where}: cannot add {' and '.join(map(str, chans))} channels")
    return chans[0]


def _shortcut(residual: str, c_in: int, c_out: int, stride: int, where: str) -> str:
    same = c_in == c_out and stride == 1
    if residual == "none" or (residual == "identity" and not same):
        return "none"
    if same:
        return "identity"
    if residual == "pad" and c_out < c_in:
        raise GenotypeError(f"{where}: a pad shortcut cannot shrink {c_in} to {c_out} channels "
                            "(use project)")
    return residual
