"""The default `cells` space: plain decisions, a pure decode, and a range a budget binds."""

from __future__ import annotations

import pytest

import searchspace
from searchspace import SpaceError

RESNET20 = dict(stage1_width=16, stage2_mult=2.0, stage3_mult=2.0, stage1_depth=3,
                stage2_depth=3, stage3_depth=3, expand=0.0, op="conv", kernel=3, repeat=2,
                branch="none", se=False, residual="pad", dense=False, act="relu")


@pytest.fixture(scope="module")
def space() -> searchspace.SearchSpace:
    return searchspace.load_space("cells")


def test_decisions_are_plain_fixed_choices(space) -> None:
    assert len(space.decisions) >= 12
    for name, choices in space.decisions.items():
        assert isinstance(choices, tuple) and choices, name
        assert all(type(c) in (str, int, float, bool) for c in choices), name
    for key in ("kernel", "expand", "residual", "dense", "op", "se"):
        assert key in space.decisions


def test_decode_is_pure_and_sampling_seeded(space) -> None:
    assert space.genotype(RESNET20) == space.genotype(dict(RESNET20))
    assert space.sample(seed=3) == space.sample(seed=3)
    assert len({space.sample(seed=s).key() for s in range(20)}) == 20


def test_contains_resnet20_exactly(space) -> None:
    assert space.genotype(RESNET20).key() == searchspace.zoo.get("resnet20").key()


def test_contains_mobilenetv2_like_points(space) -> None:
    g = space.genotype({**RESNET20, "expand": 6.0, "op": "dwconv", "repeat": 1,
                        "residual": "identity", "act": "relu6"})
    nodes = g.stages[0].cell.nodes
    assert [n.kernel for n in nodes] == [1, 3, 1]
    assert nodes[1].depthwise and nodes[0].width == 6.0 and nodes[2].act == "none"
    assert g.stages[0].cell.act == "none"  # linear bottleneck


def test_dense_cells_concatenate_their_input(space) -> None:
    g = space.genotype({**RESNET20, "dense": True})
    assert g.stages[0].cell.outputs[0] == 0
    assert g.stages[1].reduce_cell is not None
    searchspace.build(g)


def test_samples_span_a_range_that_600m_binds(space) -> None:
    madds = sorted(searchspace.cost(space.sample(seed=s)).madds for s in range(200))
    assert madds[0] < 20e6
    assert madds[-1] > 1e9
    under = sum(m <= 600e6 for m in madds) / len(madds)
    assert 0.3 < under < 0.95


def test_bad_assignments(space) -> None:
    with pytest.raises(SpaceError, match="kernel: 4 is not one of"):
        space.genotype({**RESNET20, "kernel": 4})
    with pytest.raises(SpaceError, match="lacks decisions: act"):
        space.genotype({k: v for k, v in RESNET20.items() if k != "act"})


def test_custom_space_files(tmp_path) -> None:
    text = searchspace.space._DIR.joinpath("cells.yaml").read_text()
    small = tmp_path / "small.yaml"
    small.write_text(text.replace("kernel: [3, 5, 7]", "kernel: [5]"))
    s = searchspace.load_space(small)
    assert s.decisions["kernel"] == (5,)
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("kernel: [3, 5, 7]", "kernel: [3, 4]"))
    with pytest.raises(SpaceError, match="decisions.kernel: choice 4 fails"):
        searchspace.load_space(bad)
    with pytest.raises(SpaceError, match="unknown space 'nope'"):
        searchspace.load_space("nope")
    missing = tmp_path / "missing.yaml"
    missing.write_text(text.replace("  act: [relu, relu6, swish]\n", ""))
    with pytest.raises(SpaceError, match="needs act"):
        searchspace.load_space(missing)
