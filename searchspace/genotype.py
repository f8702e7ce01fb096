"""Genotypes: a network as a frozen, validated dataclass tree that round-trips through YAML."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from searchspace.files import parse_yaml, read_yaml_text
from searchspace.limits import (
    MAX_CELLS,
    MAX_CHANNELS,
    MAX_CLASSES,
    MAX_KERNEL,
    MAX_NODES,
    MAX_RESOLUTION,
)

__all__ = ["Genotype", "GenotypeError", "Stage", "Cell", "Node", "Stem", "Head"]

ACTIVATIONS = ("none", "relu", "relu6", "swish")
COMBINES = ("add", "concat")
RESIDUALS = ("none", "identity", "pad", "project", "avgproject")
WIDTH_BASES = ("out", "in")
POOLS = ("avg", "max")


class GenotypeError(ValueError):
    """A genotype that cannot describe a network; the message starts with the offending field."""


def _fail(where: str, message: str) -> None:
    raise GenotypeError(f"{where}: {message}" if where else message)


@dataclass(frozen=True)
class Node:
    """One node of a cell: combine earlier nodes, then apply one op.

    Node numbering: 0 is the cell input, ``cell.nodes[i]`` is node ``i + 1``.
    """

    inputs: tuple[int, ...]  # earlier nodes read by this one (0 = cell input)
    op: str  # name in searchspace.ops.OPS
    combine: str = "add"  # how several inputs merge: add (same shape) or concat (channels)
    kernel: int = 3  # spatial kernel side, for convs and pools
    width: float | None = None  # output channels = width x base; None keeps the input's
    width_of: str = "out"  # base of width: "out" = the stage width, "in" = cell input channels
    depthwise: bool = False  # conv only: one filter per channel (groups = channels)
    strided: bool = False  # applies the cell's stride when the cell reduces resolution
    act: str = "none"  # activation after the op (or before it, with preact)
    preact: bool = False  # BN-act-op (DenseNet) instead of op-BN-act


@dataclass(frozen=True)
class Cell:
    """A small DAG of nodes; its output combines chosen nodes and may add the cell input.

    A cell without nodes and with outputs ``[0]`` passes its input on.
    """

    nodes: tuple[Node, ...]
    outputs: tuple[int, ...]  # nodes that form the output (0 = a dense link to the input)
    combine: str = "concat"  # how several outputs merge
    # none | identity (when shapes match) | pad | project (always add) | avgproject (2x2 avg
    # pool when strided, then a 1x1 conv without BN when channels change: NAS-Bench-201's)
    residual: str = "none"
    act: str = "none"  # activation after the residual add (post-activation ResNets)


@dataclass(frozen=True)
class Stage:
    """``depth`` cells at one width; the first one applies ``stride``."""

    cell: Cell
    depth: int  # number of cells
    width: int  # channels: the base of the cells' width ratios
    stride: int = 1  # stride of the stage's first cell (1 or 2)
    reduce_cell: Cell | None = None  # used for the first cell when stride is 2 (NASNet-style)


@dataclass(frozen=True)
class Stem:
    """The first convolution."""

    width: int  # output channels
    kernel: int = 3
    stride: int = 1
    act: str = "relu"
    norm: bool = True  # batch norm after the conv (pre-activation nets have none here)


@dataclass(frozen=True)
class Head:
    """Optional 1x1 conv, global pooling, dropout and the classifier."""

    width: int | None = None  # channels of a 1x1 conv before pooling (MobileNetV2's 1280)
    act: str = "relu"  # activation of that conv, or of the final BN with preact
    preact: bool = False  # BN-act before pooling (pre-activation nets such as DenseNet)
    pool: str = "avg"  # global pooling: avg or max
    dropout: float = 0.0  # before the classifier


@dataclass(frozen=True)
class Genotype:
    """A whole network: input, stem, stages of cells, head.

    Example:
        >>> g = Genotype.from_yaml("searchspace/zoo/resnet20.yaml")
        >>> g.resolution, g.num_classes
        (32, 10)
    """

    stem: Stem
    stages: tuple[Stage, ...]
    head: Head = field(default_factory=Head)
    resolution: int = 32  # input side in pixels
    num_classes: int = 10
    in_channels: int = 3
    name: str = ""  # a label; not part of key()

    def __post_init__(self) -> None:
        _check_genotype(self)

    # --- YAML -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain data with default-valued fields left out (the YAML form), name first."""
        plain = _to_plain(self)
        return {k: plain[k] for k in sorted(plain, key=lambda k: k != "name")}

    @classmethod
    def from_dict(cls, data: Any) -> Genotype:
        """Build from plain data; raises GenotypeError naming the offending field."""
        return _from_plain(cls, data, "")

    def to_yaml(self, path: str | Path | None = None) -> str:
        """The YAML text; also written to ``path`` when given."""
        text = yaml.dump(self.to_dict(), Dumper=_Dumper, sort_keys=False, width=120)
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_yaml(cls, source: str | Path) -> Genotype:
        """Parse a YAML path or YAML text (``yaml.safe_load``, never code; within the limits of
        ``searchspace.limits``: size, nesting, no aliases)."""
        return cls.from_dict(parse_yaml(_read_source(source), GenotypeError))

    def key(self) -> str:
        """Canonical hash of the architecture: equal nets, equal keys.

        The name is ignored, and so are nodes whose output reaches no cell output (see
        ``pruned``): they are never built nor counted. Inputs that are added (and outputs of
        a cell that adds them) are taken in sorted order, since a sum has none.
        """
        def make() -> str:
            plain = self.pruned().to_dict()
            plain.pop("name", None)
            _unordered_sums(plain)
            text = json.dumps(plain, sort_keys=True, separators=(",", ":"))
            return hashlib.sha256(text.encode()).hexdigest()[:16]

        return self.memo("key", make)

    def memo(self, name: str, make: Callable[[], Any]) -> Any:
        """``make()`` computed once for this instance (a genotype never changes): its key,
        its cost. Not a field: equality, YAML and ``replace`` ignore it."""
        cache = self.__dict__.setdefault("_memo", {})
        if name not in cache:
            cache[name] = make()
        return cache[name]

    def pruned(self) -> Genotype:
        """The same network without dead nodes (those that reach no cell output); ``self``
        when there are none. Building, costing, exporting and keying all use this form."""
        stages = tuple(dataclasses.replace(
            st, cell=pruned_cell(st.cell),
            reduce_cell=None if st.reduce_cell is None else pruned_cell(st.reduce_cell))
            for st in self.stages)
        if all(a.cell is b.cell and a.reduce_cell is b.reduce_cell
               for a, b in zip(stages, self.stages)):
            return self
        return dataclasses.replace(self, stages=stages)

    def replace(self, **changes: Any) -> Genotype:
        """A copy with some top-level fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


def _unordered_sums(plain: dict[str, Any]) -> None:
    """Sort, in a genotype's plain form, the inputs of every node that adds them and the
    outputs of every cell that adds them (the defaults: a node adds, a cell concatenates)."""
    for stage in plain["stages"]:
        for cell in (stage["cell"], stage.get("reduce_cell")):
            if cell is None:
                continue
            for node in cell.get("nodes", ()):
                if node.get("combine", "add") == "add":
                    node["inputs"] = sorted(node["inputs"])
            if cell.get("combine", "concat") == "add":
                cell["outputs"] = sorted(cell["outputs"])


def pruned_cell(cell: Cell) -> Cell:
    """``cell`` without the nodes that reach no output, the others renumbered in order;
    ``cell`` itself when every node is live."""
    live = set(cell.outputs)
    for number in range(len(cell.nodes), 0, -1):
        if number in live:
            live.update(cell.nodes[number - 1].inputs)
    keep = [n for n in range(1, len(cell.nodes) + 1) if n in live]
    if len(keep) == len(cell.nodes):
        return cell
    new = {0: 0, **{old: i + 1 for i, old in enumerate(keep)}}
    nodes = tuple(dataclasses.replace(cell.nodes[n - 1],
                                      inputs=tuple(new[i] for i in cell.nodes[n - 1].inputs))
                  for n in keep)
    return dataclasses.replace(cell, nodes=nodes, outputs=tuple(new[n] for n in cell.outputs))


def _read_source(source: str | Path) -> str:
    if isinstance(source, Path):
        return read_yaml_text(source, GenotypeError)
    if "\n" not in source and source.endswith((".yaml", ".yml")):
        path = Path(source)
        if not path.is_file():
            raise GenotypeError(f"{source}: no such genotype file")
        return read_yaml_text(path, GenotypeError)
    return source


# --- plain data <-> dataclasses ---------------------------------------------------------------

_CHILD_TYPES = {
    (Genotype, "stem"): Stem,
    (Genotype, "head"): Head,
    (Genotype, "stages"): Stage,
    (Stage, "cell"): Cell,
    (Stage, "reduce_cell"): Cell,
    (Cell, "nodes"): Node,
}
_INT_TUPLES = {(Node, "inputs"), (Cell, "outputs")}


def _to_plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        out: dict[str, Any] = {}
        for name, default, required in _plain_fields(type(obj)):
            value = getattr(obj, name)
            if not required and value == default:
                continue
            out[name] = _to_plain(value)
        return out
    if isinstance(obj, tuple):
        return [_to_plain(v) for v in obj]
    return obj


_PLAIN_FIELDS: dict[type, list[tuple[str, Any, bool]]] = {}


def _plain_fields(cls: type) -> list[tuple[str, Any, bool]]:
    """(name, default, required) of each field of ``cls``, worked out once per class (the
    plain form is made for every key)."""
    if cls not in _PLAIN_FIELDS:
        required = _required(cls)
        _PLAIN_FIELDS[cls] = [(f.name, _default(f), f.name in required) for f in fields(cls)]
    return _PLAIN_FIELDS[cls]


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return dataclasses.MISSING


def _required(cls: type) -> set[str]:
    return {
        f.name
        for f in fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING  # type: ignore[misc]
    }


def _from_plain(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        _fail(where or "genotype", f"expected a mapping, got {_kind(data)}")
    names = [f.name for f in fields(cls)]
    for key in data:
        if key not in names:
            _fail(_join(where, str(key)), f"unknown field (expected one of {', '.join(names)})")
    for name in _required(cls):
        if name not in data:
            _fail(_join(where, name), "missing")
    kwargs = {}
    for f in fields(cls):
        if f.name in data:
            kwargs[f.name] = _convert(cls, f, data[f.name], _join(where, f.name))
    try:
        return cls(**kwargs)
    except GenotypeError:
        raise
    except (TypeError, ValueError) as exc:  # pragma: no cover - defensive
        _fail(where or "genotype", str(exc))


def _convert(cls: type, f: dataclasses.Field, value: Any, where: str) -> Any:
    child = _CHILD_TYPES.get((cls, f.name))
    if (cls, f.name) in _INT_TUPLES:
        if not isinstance(value, list) or not all(_is_int(v) for v in value):
            _fail(where, "expected a list of node numbers")
        return tuple(value)
    if child is not None and f.name in ("stages", "nodes"):
        if not isinstance(value, list) or (not value and f.name == "stages"):
            _fail(where, "expected a non-empty list" if f.name == "stages" else "expected a list")
        return tuple(_from_plain(child, v, f"{where}[{i}]") for i, v in enumerate(value))
    if child is not None:
        optional = value is None and f.name == "reduce_cell"
        return None if optional else _from_plain(child, value, where)
    return _check_scalar(f, value, where)


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_scalar(f: dataclasses.Field, value: Any, where: str) -> Any:
    kind = str(f.type)
    if kind == "bool":
        if not isinstance(value, bool):
            _fail(where, f"expected true or false, got {value!r}")
    elif kind == "int":
        if not _is_int(value):
            _fail(where, f"expected an integer, got {value!r}")
    elif kind.startswith("int |"):
        if value is not None and not _is_int(value):
            _fail(where, f"expected an integer or null, got {value!r}")
    elif kind.startswith("float"):
        if value is None and "None" in kind:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            _fail(where, f"expected a number, got {value!r}")
        return float(value)
    elif kind == "str" and not isinstance(value, str):
        _fail(where, f"expected a string, got {value!r}")
    return value


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


class _Dumper(yaml.CSafeDumper if yaml.__with_libyaml__ else yaml.SafeDumper):
    """Block style for structure, one flow-style line per node; no anchors (libyaml's
    emitter writes the same text as PyYAML's, four times faster)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_dict(dumper: yaml.SafeDumper, data: dict) -> yaml.Node:
    leaf = all(not isinstance(v, dict) for v in data.values()) and all(
        not isinstance(x, dict) for v in data.values() if isinstance(v, list) for x in v
    )
    return dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=leaf)


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flow = all(not isinstance(v, (dict, list)) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(dict, _represent_dict)
_Dumper.add_representer(list, _represent_list)


# --- validation ---------------------------------------------------------------------------


def _check_genotype(g: Genotype) -> None:
    from searchspace import ops  # late: ops imports this module

    _positive(g.resolution, "resolution", MAX_RESOLUTION)
    _positive(g.num_classes, "num_classes", MAX_CLASSES)
    _positive(g.in_channels, "in_channels", MAX_CHANNELS)
    _instance(g.stem, Stem, "stem")
    _instance(g.head, Head, "head")
    _check_stem(g.stem)
    _check_head(g.head)
    if not g.stages:
        _fail("stages", "at least one stage is needed")
    if len(g.stages) > MAX_CELLS:
        _fail("stages", f"{len(g.stages):,} stages, over the limit of {MAX_CELLS:,} cells")
    for i, stage in enumerate(g.stages):
        _instance(stage, Stage, f"stages[{i}]")
        _check_stage(stage, f"stages[{i}]", ops)
    cells = sum(stage.depth for stage in g.stages)
    if cells > MAX_CELLS:
        _fail("stages", f"{cells:,} cells in all (the depths summed), over the limit of "
                        f"{MAX_CELLS:,}")
    from searchspace.cost import check_ceiling  # late: both import this module
    from searchspace.layout import layout  # shapes: channels add up, resolutions agree

    check_ceiling(g, layout(g, prune=False))  # every node as written, dead ones too


def _positive(value: Any, where: str, most: int) -> None:
    if not _is_int(value) or value < 1:
        _fail(where, f"must be a positive integer, got {value!r}")
    if value > most:
        _fail(where, f"{value:,} is over the limit of {most:,}")


def _instance(value: Any, cls: type, where: str) -> None:
    if not isinstance(value, cls):
        _fail(where, f"expected a {cls.__name__.lower()} mapping, got {_kind(value)}")


def _one_of(value: Any, allowed: tuple, where: str) -> None:
    if value not in allowed:
        _fail(where, f"{value!r} is not one of {', '.join(map(str, allowed))}")


def _check_stem(stem: Stem) -> None:
    _positive(stem.width, "stem.width", MAX_CHANNELS)
    _odd_kernel(stem.kernel, "stem.kernel")
    _one_of(stem.stride, (1, 2), "stem.stride")
    _one_of(stem.act, ACTIVATIONS, "stem.act")


def _check_head(head: Head) -> None:
    if head.width is not None:
        _positive(head.width, "head.width", MAX_CHANNELS)
    _one_of(head.act, ACTIVATIONS, "head.act")
    _one_of(head.pool, POOLS, "head.pool")
    if head.preact and head.width is not None:
        _fail("head.preact", "a head has either a 1x1 conv (width) or a preact BN, not both")
    if not 0.0 <= head.dropout < 1.0:
        _fail("head.dropout", f"must be in [0, 1), got {head.dropout}")


def _odd_kernel(k: Any, where: str) -> None:
    if not _is_int(k) or k < 1 or k % 2 == 0:
        _fail(where, f"convolution kernels are odd positive integers, got {k!r}")
    if k > MAX_KERNEL:
        _fail(where, f"{k:,} is over the limit of {MAX_KERNEL}")


def _check_stage(stage: Stage, where: str, ops: Any) -> None:
    _positive(stage.depth, f"{where}.depth", MAX_CELLS)
    _positive(stage.width, f"{where}.width", MAX_CHANNELS)
    _one_of(stage.stride, (1, 2), f"{where}.stride")
    _instance(stage.cell, Cell, f"{where}.cell")
    _check_cell(stage.cell, f"{where}.cell", ops)
    if stage.reduce_cell is not None:
        _instance(stage.reduce_cell, Cell, f"{where}.reduce_cell")
        _check_cell(stage.reduce_cell, f"{where}.reduce_cell", ops)
        if stage.stride != 2:
            _fail(f"{where}.reduce_cell", "only a stage with stride 2 uses a reduce_cell")
    reducer, name = ((stage.reduce_cell, "reduce_cell") if stage.reduce_cell
                     else (stage.cell, "cell"))
    if stage.stride == 2 and _output_level(reducer) != 1:
        _fail(f"{where}.{name}", "stage has stride 2 but no strided node lies on every path")


def _check_cell(cell: Cell, where: str, ops: Any) -> None:
    if len(cell.nodes) > MAX_NODES:
        _fail(f"{where}.nodes", f"{len(cell.nodes):,} nodes, over the limit of {MAX_NODES}")
    for i, node in enumerate(cell.nodes):
        _check_node(node, i + 1, f"{where}.nodes[{i}]", ops)
    if not cell.outputs:
        _fail(f"{where}.outputs", "at least one output node is needed")
    for n in cell.outputs:
        if not 0 <= n <= len(cell.nodes):
            _fail(f"{where}.outputs", f"node {n} does not exist")
    if len(set(cell.outputs)) != len(cell.outputs):
        _fail(f"{where}.outputs", "a node is listed twice")
    _one_of(cell.combine, COMBINES, f"{where}.combine")
    _one_of(cell.residual, RESIDUALS, f"{where}.residual")
    _one_of(cell.act, ACTIVATIONS, f"{where}.act")
    levels = _levels(cell, where)
    if len({levels[n] for n in cell.outputs}) > 1:
        _fail(f"{where}.outputs", "outputs come at different resolutions (strided and not)")


def _check_node(node: Node, number: int, where: str, ops: Any) -> None:
    if not node.inputs:
        _fail(f"{where}.inputs", "a node reads at least one earlier node")
    for n in node.inputs:
        if n < 0 or n >= number:
            _fail(f"{where}.inputs", f"node {n} does not exist yet")
    if len(set(node.inputs)) != len(node.inputs):
        _fail(f"{where}.inputs", "a node is read twice")
    op = ops.OPS.get(node.op)
    if op is None:
        _fail(f"{where}.op", f"unknown op {node.op!r} (known: {', '.join(sorted(ops.OPS))})")
    _one_of(node.combine, COMBINES, f"{where}.combine")
    _one_of(node.width_of, WIDTH_BASES, f"{where}.width_of")
    _one_of(node.act, ACTIVATIONS, f"{where}.act")
    if not _is_int(node.kernel) or not 1 <= node.kernel <= MAX_KERNEL:
        _fail(f"{where}.kernel", f"must be an integer from 1 to {MAX_KERNEL}, got {node.kernel!r}")
    if node.width is not None:
        _check_ratio(node.width, f"{where}.width")
    op.check(node, where)


def _check_ratio(width: Any, where: str) -> None:
    if isinstance(width, bool) or not isinstance(width, (int, float)):
        _fail(where, f"expected a number, got {width!r}")
    if not math.isfinite(width):
        _fail(where, f"must be a finite number, got {width}")
    if not width > 0:
        _fail(where, f"must be positive, got {width}")
    if width > MAX_CHANNELS:  # a ratio of a base of at least one channel
        _fail(where, f"{width:g} is over the limit of {MAX_CHANNELS:,}")


def _levels(cell: Cell, where: str) -> list[int]:
    """Resolution level of every node: how many strided nodes lie before it (0 or 1)."""
    levels = [0]
    for i, node in enumerate(cell.nodes):
        seen = {levels[n] for n in node.inputs}
        if len(seen) > 1:
            _fail(f"{where}.nodes[{i}].inputs", "inputs come at different resolutions")
        level = seen.pop() + int(node.strided)
        if level > 1:
            _fail(f"{where}.nodes[{i}].strided", "a path is strided twice")
        levels.append(level)
    return levels


def _output_level(cell: Cell) -> int:
    return _levels(cell, "")[cell.outputs[0]]
