"""Contract tests over the op registry and the zoo: shapes, costs and weights agree."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import searchspace
from searchspace import Cell, Genotype, Node, Stage, Stem
from searchspace.layout import layout
from searchspace.ops import OPS, round_channels

# One node per registered op, as a cell would use it; a new op must add itself here.
EXAMPLES = {
    "conv": Node(inputs=(0,), op="conv", kernel=5, width=1.5, strided=True, act="swish"),
    "sepconv": Node(inputs=(0,), op="sepconv", kernel=3, width=1.0, strided=True, act="relu"),
    "maxpool": Node(inputs=(0,), op="maxpool", kernel=3, strided=True),
    "avgpool": Node(inputs=(0,), op="avgpool", kernel=2, strided=True),
    "identity": Node(inputs=(0,), op="identity"),
    "reluconv": Node(inputs=(0,), op="reluconv", kernel=3, width=2.0, strided=True),
    "zero": Node(inputs=(0,), op="zero", strided=True),
    "se": Node(inputs=(0,), op="se", width=0.25, width_of="in", act="relu"),
}


def test_every_op_has_an_example() -> None:
    assert set(EXAMPLES) == set(OPS)


def _net(node: Node, stride: int, residual: str = "project") -> Genotype:
    """stem -> one reducing cell holding ``node`` then a projection -> head."""
    strided = node.strided or stride == 1
    nodes = (node, Node(inputs=(1,), op="conv", kernel=1, width=1.0,
                        strided=not strided, act="relu"))
    cell = Cell(nodes=nodes, outputs=(2,), residual=residual)
    return Genotype(stem=Stem(width=8), resolution=16,
                    stages=(Stage(cell=cell, depth=3 - stride, width=16, stride=stride),))


@pytest.mark.parametrize("name", sorted(EXAMPLES))
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("residual", ["project", "avgproject"])
def test_op_contract(name: str, stride: int, residual: str) -> None:
    node = EXAMPLES[name]
    if stride == 1 and name == "avgpool":
        node = Node(inputs=(0,), op="avgpool", kernel=3)
    g = _net(node, stride, residual)
    assert Genotype.from_yaml(g.to_yaml()) == g
    model = searchspace.build(g).eval()
    plan = layout(g)
    c = searchspace.cost(g)
    assert sum(p.numel() for p in model.parameters()) == c.params
    x = torch.randn(2, 3, 16, 16)
    feats = model.stages[0](model.stem(x))
    assert tuple(feats.shape[1:]) == plan.head_in
    counter = FlopCounterMode(display=False)
    with counter:
        model(x)
    assert abs(counter.get_total_flops() / 4 - c.madds) / c.madds < 0.01


@pytest.mark.parametrize("name", searchspace.zoo.names())
def test_zoo_builds_runs_and_keeps_its_module_names(name: str) -> None:
    g = searchspace.zoo.get(name)
    torch.manual_seed(0)
    a = searchspace.build(g).eval()
    b = searchspace.build(g).eval()
    b.load_state_dict(a.state_dict(), strict=True)
    x = torch.randn(2, 3, g.resolution, g.resolution)
    with torch.no_grad():
        out = a(x)
        assert out.shape == (2, g.num_classes)
        assert torch.equal(out, b(x))
        a_cl = a.to(memory_format=torch.channels_last)
        torch.testing.assert_close(a_cl(x.to(memory_format=torch.channels_last)), out,
                                   atol=1e-4, rtol=1e-4)


def test_residual_kinds() -> None:
    base = searchspace.zoo.get("resnet20")
    for residual, extra_params in (("pad", 0), ("none", 0), ("identity", 0),
                                   ("project", 16 * 32 + 64 + 32 * 64 + 128)):
        stages = tuple(
            Stage(cell=Cell(nodes=s.cell.nodes, outputs=s.cell.outputs, residual=residual,
                            act="relu"), depth=s.depth, width=s.width, stride=s.stride)
            for s in base.stages)
        g = base.replace(stages=stages)
        assert searchspace.cost(g).params == 269_722 + extra_params
        model = searchspace.build(g)
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_round_channels_edges() -> None:
    # nearest multiple of 8, bumped up when that would lose more than 10%
    assert [round_channels(v) for v in (1, 8, 11, 12, 13.9, 36, 100)] == [8, 8, 16, 16, 16, 40,
                                                                          104]
    assert round_channels(17, 4) == 16
