"""Search spaces: a fixed list of named categorical decisions and a pure map to a Genotype."""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from searchspace import nb201, nbmacro
from searchspace.cost import cost
from searchspace.files import load_named_yaml, names_in
from searchspace.genotype import Cell, Genotype, GenotypeError, Head, Node, Stage, Stem
from searchspace.limits import MAX_CHOICES, MAX_CLASSES, MAX_NODES, MAX_RESOLUTION
from searchspace.ops import round_channels

__all__ = ["SearchSpace", "SpaceError", "load_space", "space_names"]

Choice = str | int | float | bool
_DIR = Path(__file__).parent / "spaces"


class SpaceError(ValueError):
    """A search space file or an assignment that does not fit its space."""


@dataclass(frozen=True)
class SearchSpace:
    """Named decisions, each a fixed tuple of choices, and the template that decodes them.

    Example:
        >>> space = load_space("cells")
        >>> g = space.sample(seed=0)
        >>> sorted(space.decisions)[:2]
        ['act', 'branch']
    """

    name: str
    decisions: dict[str, tuple[Choice, ...]]
    template: str
    resolution: int = 32
    num_classes: int = 10

    def genotype(self, assignment: Mapping[str, Choice]) -> Genotype:
        """The genotype for a full assignment {decision: choice}."""
        self.check(assignment)
        memo = self.__dict__.setdefault("_decoded", {})  # a genotype never changes
        k = tuple((type(assignment[d]), assignment[d]) for d in self.decisions)  # 1 != True
        if k not in memo:
            if len(memo) >= 100_000:
                memo.clear()
            memo[k] = TEMPLATES[self.template](dict(assignment), self.resolution,
                                               self.num_classes)
        return memo[k]

    def check(self, assignment: Mapping[str, Choice]) -> None:
        """Raise SpaceError unless every decision has one of its choices."""
        missing = [k for k in self.decisions if k not in assignment]
        if missing:
            raise SpaceError(f"assignment lacks decisions: {', '.join(missing)}")
        for name, value in assignment.items():
            if name not in self.decisions:
                raise SpaceError(f"{name}: not a decision of space {self.name!r}")
            if value not in self.decisions[name]:
                raise SpaceError(f"{name}: {value!r} is not one of {list(self.decisions[name])}")

    def sample_assignment(self, rng: random.Random) -> dict[str, Choice]:
        """A uniformly random assignment."""
        return {k: rng.choice(v) for k, v in self.decisions.items()}

    def sample(self, seed: int = 0) -> Genotype:
        """A uniformly random genotype of the space."""
        return self.genotype(self.sample_assignment(random.Random(seed)))

    def cheapest(self, measure: Callable[[Genotype], float] = lambda g: cost(g).madds
                 ) -> Genotype:
        """The cheapest network by ``measure`` (multiply-adds by default) that coordinate
        descent finds: from the first and from the last choices, each decision in turn set
        to its cheapest choice until nothing changes (a few hundred cost calls)."""
        best_value, best = float("inf"), None
        for start in ({k: v[0] for k, v in self.decisions.items()},
                      {k: v[-1] for k, v in self.decisions.items()}):
            a, value, changed = dict(start), measure(self.genotype(start)), True
            while changed:
                changed = False
                for name, choices in self.decisions.items():
                    for c in choices:
                        trial = {**a, name: c}
                        v = measure(self.genotype(trial))
                        if v < value:
                            a, value, changed = trial, v, True
            if value < best_value:
                best_value, best = value, a
        return self.genotype(best)

    def for_data(self, num_classes: int, resolution: int) -> SearchSpace:
        """This space's networks built for other images: ``num_classes`` outputs, input
        ``resolution`` pixels a side (a dataset's own)."""
        if (num_classes, resolution) == (self.num_classes, self.resolution):
            return self
        _count(num_classes, f"{self.name}: num_classes", MAX_CLASSES)
        _count(resolution, f"{self.name}: resolution", MAX_RESOLUTION)
        return dataclasses.replace(self, num_classes=num_classes, resolution=resolution)

    @property
    def size(self) -> int:
        """Number of distinct assignments."""
        n = 1
        for v in self.decisions.values():
            n *= len(v)
        return n


def space_names() -> list[str]:
    """The spaces shipped with the package."""
    return names_in(_DIR)


def load_space(name_or_path: str | Path) -> SearchSpace:
    """A shipped space by name, or a space YAML file by path."""
    path, data = load_named_yaml(name_or_path, _DIR, "space", SpaceError)
    return _from_dict(data, str(path))


_FIELDS = ("name", "template", "resolution", "num_classes", "decisions")


def _from_dict(data: Any, where: str) -> SearchSpace:
    if not isinstance(data, dict):
        raise SpaceError(f"{where}: expected a mapping")
    unknown = [str(k) for k in data if k not in _FIELDS]
    if unknown:
        raise SpaceError(f"{where}: {unknown[0]}: unknown field (expected one of "
                         f"{', '.join(_FIELDS)})")
    template = data.get("template")
    if not isinstance(template, str) or template not in TEMPLATES:
        raise SpaceError(f"{where}: template: {template!r} is not one of {sorted(TEMPLATES)}")
    decisions = data.get("decisions")
    if not isinstance(decisions, dict) or not decisions:
        raise SpaceError(f"{where}: decisions: expected a mapping of name -> list of choices")
    out: dict[str, tuple[Choice, ...]] = {}
    for name, choices in decisions.items():
        if not isinstance(choices, list) or not choices:
            raise SpaceError(f"{where}: decisions.{name}: expected a non-empty list")
        if not all(isinstance(c, (str, int, float, bool)) for c in choices):
            raise SpaceError(f"{where}: decisions.{name}: choices are str, int, float or bool")
        if any(isinstance(c, float) and not math.isfinite(c) for c in choices):
            raise SpaceError(f"{where}: decisions.{name}: choices are finite numbers")
        out[str(name)] = tuple(choices)
    total = sum(len(c) for c in out.values())
    if total > MAX_CHOICES:  # each choice is decoded once when the space loads
        raise SpaceError(f"{where}: decisions: {total:,} choices in all, over the limit of "
                         f"{MAX_CHOICES:,}")
    needed = TEMPLATE_DECISIONS[template]
    missing = sorted(needed - set(out))
    if missing:
        raise SpaceError(f"{where}: decisions: template {template!r} needs {', '.join(missing)}")
    name = data.get("name", Path(where).stem)
    if isinstance(name, bool) or not isinstance(name, (str, int, float)):
        raise SpaceError(f"{where}: name: expected a string, got {name!r}")
    space = SearchSpace(str(name), out, template,
                        _count(data.get("resolution", 32), f"{where}: resolution", MAX_RESOLUTION),
                        _count(data.get("num_classes", 10), f"{where}: num_classes", MAX_CLASSES))
    _check_decodes(space, where)
    return space


def _count(value: Any, where: str, most: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
        raise SpaceError(f"{where}: must be an integer from 1 to {most:,}, got {value!r}")
    return value


# what a template raises on a choice it cannot use (int("a"), int(inf), a bad genotype)
_DECODE_ERRORS = (ValueError, KeyError, TypeError, ArithmeticError)


def _check_decodes(space: SearchSpace, where: str) -> None:
    """Every choice must decode: try each one in an otherwise first-choice assignment, then
    the largest numbers together (the costliest corner, in a template that grows with them)."""
    base = {k: v[0] for k, v in space.decisions.items()}
    try:
        space.genotype(base)
    except _DECODE_ERRORS as exc:
        raise SpaceError(f"{where}: the first choices together fail: {exc}") from None
    for name, choices in space.decisions.items():
        for c in choices:
            try:
                space.genotype({**base, name: c})
            except _DECODE_ERRORS as exc:
                raise SpaceError(f"{where}: decisions.{name}: choice {c!r} fails: {exc}") from None
    try:  # the largest numbers together: widths, depths and kernels past the limits fail here
        space.genotype({k: _largest(v) for k, v in space.decisions.items()})
    except _DECODE_ERRORS as exc:
        raise SpaceError(f"{where}: the largest choices together fail: {exc}") from None


def _largest(choices: tuple[Choice, ...]) -> Choice:
    """The largest number among ``choices`` (not a bool); the first choice when none is one."""
    numbers = [c for c in choices if isinstance(c, (int, float)) and not isinstance(c, bool)]
    return max(numbers) if numbers else choices[0]


# --- the `cells` template ---------------------------------------------------------------------


def _cells(d: dict[str, Any], resolution: int, num_classes: int) -> Genotype:
    w1 = int(d["stage1_width"])
    w2 = max(w1, round_channels(w1 * d["stage2_mult"]))
    w3 = max(w2, round_channels(w2 * d["stage3_mult"]))
    # A dense cell concatenates its input, so it cannot stride: a non-dense copy reduces.
    cell = _cell(d, strided=not d["dense"])
    reduce = _cell({**d, "dense": False, "residual": "none"}, strided=True) if d["dense"] else None
    stages = (
        Stage(cell=cell, depth=int(d["stage1_depth"]), width=w1),
        Stage(cell=cell, depth=int(d["stage2_depth"]), width=w2, stride=2, reduce_cell=reduce),
        Stage(cell=cell, depth=int(d["stage3_depth"]), width=w3, stride=2, reduce_cell=reduce),
    )
    return Genotype(stem=Stem(width=w1, act=d["act"]), stages=stages, head=Head(),
                    resolution=resolution, num_classes=num_classes)


def _cell(d: dict[str, Any], strided: bool) -> Cell:
    act, expand, op = d["act"], float(d["expand"]), d["op"]
    branch = d["branch"] != "none"
    # new features a cell adds: all its width, or a quarter when it keeps its input (dense)
    out_width = (0.25 if d["dense"] else 1.0) / (2 if branch else 1)
    nodes: list[Node] = []

    def add(**kw: Any) -> int:
        nodes.append(Node(inputs=(len(nodes),), **kw))
        return len(nodes)

    if expand > 0:
        add(op="conv", kernel=1, width=expand, act=act)
    inner = expand if expand > 0 else out_width
    project = expand > 0 or op == "dwconv"
    repeat = int(d["repeat"])
    if not 1 <= repeat <= MAX_NODES:  # 0 could leave a cell without nodes
        raise GenotypeError(f"repeat: must be from 1 to {MAX_NODES}, got {repeat}")
    for r in range(repeat):
        kw: dict[str, Any] = {"kernel": int(d["kernel"]), "strided": strided and r == 0,
                              "act": act}
        if op == "dwconv":
            kw.update(op="conv", depthwise=True)
        else:
            kw.update(op=op, width=inner)
        add(**kw)
    if d["se"]:
        add(op="se", width=0.25, width_of="in", act=act)
    if project:
        add(op="conv", kernel=1, width=out_width)
    nodes[-1] = _linear(nodes[-1])
    outputs = [len(nodes)]
    if branch:
        outputs.append(_branch(nodes, d["branch"], out_width, strided))
    if d["dense"]:
        outputs.insert(0, 0)
    residual = "none" if d["dense"] else d["residual"]
    cell_act = "none" if expand > 1 else act
    return Cell(nodes=tuple(nodes), outputs=tuple(outputs), residual=residual, act=cell_act)


def _linear(node: Node) -> Node:
    """The last node of a path stays linear; the cell's act follows the residual add."""
    if node.op in ("conv", "sepconv") and not node.depthwise:
        return Node(**{**node.__dict__, "act": "none"})
    return node


def _branch(nodes: list[Node], kind: str, width: float, strided: bool) -> int:
    if kind == "pool":
        nodes.append(Node(inputs=(0,), op="maxpool", kernel=3, strided=strided))
        nodes.append(Node(inputs=(len(nodes),), op="conv", kernel=1, width=width))
    else:
        nodes.append(Node(inputs=(0,), op="conv", kernel=int(kind[1:]), width=width,
                          strided=strided))
    return len(nodes)


TEMPLATES: dict[str, Callable[[dict[str, Any], int, int], Genotype]] = {
    "cells": _cells,
    "nb201": nb201.genotype,
    "nbmacro": nbmacro.genotype,
}
TEMPLATE_DECISIONS: dict[str, set[str]] = {
    "nb201": set(nb201.DECISIONS),
    "nbmacro": set(nbmacro.DECISIONS),
    "cells": {"stage1_width", "stage2_mult", "stage3_mult", "stage1_depth", "stage2_depth",
              "stage3_depth", "expand", "op", "kernel", "repeat", "branch", "se", "residual",
              "dense", "act"},
}
