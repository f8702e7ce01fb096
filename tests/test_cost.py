"""The counter: pinned zoo counts, published anchors, and agreement with PyTorch's counter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import searchspace

GOLDEN = json.loads((Path(__file__).parent / "golden" / "zoo_costs.json").read_text())


def _measured(g: searchspace.Genotype) -> tuple[float, int]:
    """(multiply-adds per image by FlopCounterMode, parameters of the built module), on meta."""
    with torch.device("meta"):
        model = searchspace.build(g)
        x = torch.empty(2, g.in_channels, g.resolution, g.resolution)
    counter = FlopCounterMode(display=False)
    with counter:
        model(x)
    return counter.get_total_flops() / 2 / 2, sum(p.numel() for p in model.parameters())


def test_zoo_is_pinned_exactly() -> None:
    got = {n: {"params": (c := searchspace.cost(searchspace.zoo.get(n))).params,
               "madds": c.madds} for n in searchspace.zoo.names()}
    assert got == GOLDEN


@pytest.mark.parametrize("name,params,madds", [
    ("resnet20", 269_722, 40.55e6), ("resnet56", 853_018, None), ("resnet110", 1_727_962, None),
])
def test_published_anchors(name: str, params: int, madds: float | None) -> None:
    c = searchspace.cost(searchspace.zoo.get(name))
    assert c.params == params
    if madds is not None:
        assert round(c.madds / 1e4) * 1e4 == madds


@pytest.mark.parametrize("name", searchspace.zoo.names())
def test_zoo_within_a_few_percent_of_its_source(name: str) -> None:
    source, published, _ = searchspace.zoo.SOURCES[name]
    assert source
    if published:
        params = searchspace.cost(searchspace.zoo.get(name)).params
        assert abs(params - published) / published < 0.03


@pytest.mark.parametrize("name", searchspace.zoo.names())
def test_counter_agrees_with_flop_counter_on_zoo(name: str) -> None:
    g = searchspace.zoo.get(name)
    c = searchspace.cost(g)
    madds, params = _measured(g)
    assert params == c.params
    assert abs(madds - c.madds) / c.madds < 0.01


def test_counter_agrees_with_flop_counter_on_random_genotypes() -> None:
    space = searchspace.load_space("cells")
    for seed in range(50):
        g = space.sample(seed)
        c = searchspace.cost(g)
        madds, params = _measured(g)
        assert params == c.params, seed
        assert abs(madds - c.madds) / c.madds < 0.01, seed


def test_layers_add_up_and_have_names_of_real_modules() -> None:
    g = searchspace.zoo.get("efficientnet_b0")
    c = searchspace.cost(g)
    assert sum(x.madds for x in c.layers) == c.madds
    modules = dict(searchspace.build(g).named_modules())
    for layer in c.layers:
        assert layer.name in modules, layer.name


def test_dead_nodes_are_pruned_before_keying_costing_and_building() -> None:
    r20 = searchspace.zoo.get("resnet20")
    cell = r20.stages[0].cell
    unused = searchspace.Node(inputs=(1,), op="conv", kernel=5, width=2.0, act="relu")
    dead = searchspace.Cell(nodes=(*cell.nodes, unused), outputs=cell.outputs,
                            residual=cell.residual, act=cell.act)
    g = r20.replace(stages=(r20.stages[0].__class__(cell=dead, depth=3, width=16),
                            *r20.stages[1:]))
    assert searchspace.Genotype.from_yaml(g.to_yaml()) == g  # written as it was, dead node too
    assert g.key() == r20.key() and g.pruned().stages[0].cell == cell
    assert searchspace.cost(g) == searchspace.cost(r20)  # 40.55M, not 68.86M
    assert searchspace.cost(g, prune=False).madds > searchspace.cost(r20).madds
    model = searchspace.build(g)
    assert sum(p.numel() for p in model.parameters()) == 269_722 and not hasattr(
        model.stages[0][0], "n3")
