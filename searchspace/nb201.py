"""NAS-Bench-201's network as a genotype: its cell space, its string form, its exact network.

NAS-Bench-201 (Dong & Yang, ICLR 2020) trained all 15,625 cells of a small space. A cell is a
DAG of 4 nodes; each edge i->j carries one of five ops and node j sums its incoming edges; the
cell's output is node 3. The network: a 3x3 conv stem (16 channels) and BN, three stages of
5 cells at 16, 32 and 64 channels with a residual reduction block (a ResNet basic block of
ReLU-conv-BN ops, stride 2, whose shortcut is a 2x2 average pool and a 1x1 conv) between them,
then BN, ReLU, global average pooling and the classifier.

Each live edge becomes one node of our cell (``none`` edges are dropped); a benchmark node that
sums several edges becomes an identity node that adds them; a benchmark node with no live
input gives zeros (the ``zero`` op), and a parameter-free edge out of it carries nothing, so
it is dropped too. The string form is the benchmark's own:
``|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from searchspace.genotype import Cell, Genotype, GenotypeError, Head, Node, Stage, Stem

__all__ = ["OPS", "EDGES", "DECISIONS", "genotype", "arch_string", "parse_arch"]

# The benchmark's op names, in its own order, and what each becomes here (None: no edge).
OPS: dict[str, dict[str, Any] | None] = {
    "none": None,
    "skip_connect": {"op": "identity"},
    "nor_conv_1x1": {"op": "reluconv", "kernel": 1},
    "nor_conv_3x3": {"op": "reluconv", "kernel": 3},
    "avg_pool_3x3": {"op": "avgpool", "kernel": 3},
}
EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))  # e0..e5: the string's order
DECISIONS = tuple(f"e{i}" for i in range(len(EDGES)))
WIDTH, CELLS_PER_STAGE = 16, 5


def arch_string(ops: Mapping[str, str]) -> str:
    """The benchmark's string for ``{"e0": op, ..., "e5": op}``."""
    parts, k = [], 0
    for j in (1, 2, 3):
        parts.append("|" + "|".join(f"{ops[f'e{k + i}']}~{i}" for i in range(j)) + "|")
        k += j
    return "+".join(parts)


def parse_arch(text: str) -> dict[str, str]:
    """``{"e0": op, ...}`` from the benchmark's string; GenotypeError when it is not one."""
    ops: dict[str, str] = {}
    parts = text.strip().split("+")
    if len(parts) != 3:
        raise GenotypeError(f"{text!r}: a NAS-Bench-201 cell string has 3 nodes joined by '+'")
    for j, part in enumerate(parts, start=1):
        tokens = part.strip("|").split("|")
        if not (part.startswith("|") and part.endswith("|")) or len(tokens) != j:
            raise GenotypeError(f"{text!r}: node {j} should read |op~0|...|op~{j - 1}|")
        for i, token in enumerate(tokens):
            op, _, source = token.partition("~")
            if op not in OPS or source != str(i):
                raise GenotypeError(f"{text!r}: {token!r} is not op~{i} with op one of "
                                    f"{', '.join(OPS)}")
            ops[f"e{EDGES.index((i, j))}"] = op
    return ops


def genotype(ops: Mapping[str, Any], resolution: int = 32, num_classes: int = 10) -> Genotype:
    """The benchmark's network for the cell ``{"e0": op, ..., "e5": op}``, named by its string."""
    for d in DECISIONS:
        if ops[d] not in OPS:
            raise GenotypeError(f"{d}: {ops[d]!r} is not one of {', '.join(OPS)}")
    cell = _cell([ops[d] for d in DECISIONS])
    block = Cell(nodes=(Node(inputs=(0,), op="reluconv", kernel=3, width=1.0, strided=True),
                        Node(inputs=(1,), op="reluconv", kernel=3)),
                 outputs=(2,), residual="avgproject")
    n = CELLS_PER_STAGE
    stages = (Stage(cell=cell, depth=n, width=WIDTH),
              Stage(cell=cell, depth=n + 1, width=2 * WIDTH, stride=2, reduce_cell=block),
              Stage(cell=cell, depth=n + 1, width=4 * WIDTH, stride=2, reduce_cell=block))
    return Genotype(stem=Stem(width=WIDTH, act="none"), stages=stages,
                    head=Head(preact=True, act="relu"), resolution=resolution,
                    num_classes=num_classes, name=arch_string(ops))


def _cell(edge_ops: list[str]) -> Cell:
    nodes: list[Node] = []
    where: dict[int, int | None] = {0: 0}  # benchmark node -> our node number (None: zeros)
    zeros: dict[int, int] = {}  # benchmark node -> our zero node reading it
    outputs: list[int] = []

    def add(node: Node) -> int:
        nodes.append(node)
        return len(nodes)

    for j in (1, 2, 3):
        terms = []
        for k, (i, target) in enumerate(EDGES):
            spec = OPS[edge_ops[k]]
            if target != j or spec is None:
                continue
            source = where[i]
            if source is None:  # zeros in: only a conv's BN makes something of them
                if spec["op"] != "reluconv":
                    continue
                if i not in zeros:
                    zeros[i] = add(Node(inputs=(0,), op="zero"))
                source = zeros[i]
            terms.append(add(Node(inputs=(source,), **spec)))
        if j == 3:
            outputs = terms or [add(Node(inputs=(0,), op="zero"))]
        elif len(terms) > 1:
            where[j] = add(Node(inputs=tuple(terms), op="identity", combine="add"))
        else:
            where[j] = terms[0] if terms else None
    return Cell(nodes=tuple(nodes), outputs=tuple(outputs), combine="add")
