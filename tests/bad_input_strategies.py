"""Hypothesis strategies for hostile input: real genotypes, spaces and profiles with random
damage (wrong types, nulls, huge, negative and non-finite numbers, extra and missing keys,
deep nesting), and the one property each loader must keep. Shared by
``tests/test_bad_input.py`` (a few hundred examples) and ``benchmarks/fuzz_genotypes.py``
(ten thousand)."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

import searchspace
from searchspace import Genotype, GenotypeError
from searchspace.limits import MAX_MADDS, MAX_PARAMS

ROOT = Path(__file__).resolve().parents[1]

# Values that break loaders: wrong types, nulls, edges, huge, negative, non-finite.
NASTY = [None, True, False, "", "x", "conv", -1, 0, 1, 2, 3, 7, 2**31, 2**63, 10**30, -10**20,
         0.0, 0.5, -0.5, 1.0, 1e12, 1e308, -1e308, math.inf, -math.inf, math.nan, [], {}, [0],
         [1, 0], [0, 0], {"a": 1}, {"inputs": [0], "op": "conv"}]
# Plausible values, so that many damaged inputs still describe something valid.
PLAUSIBLE = ["conv", "sepconv", "reluconv", "maxpool", "avgpool", "identity", "zero", "se",
             "relu", "relu6", "swish", "none", "add", "concat", "pad", "project", "avgproject",
             "in", "out", "avg", "max", "search", "final", "linear", "cosine", "cpu", 1, 2, 3,
             4, 5, 8, 16, 32, 64, 0.25, 1.0, 2.0, [0], [1], [0, 1], [2]]
# Field names: known ones (moved to the wrong place) and unknown ones.
KEYS = ["inputs", "op", "kernel", "width", "width_of", "depthwise", "strided", "act", "preact",
        "combine", "nodes", "outputs", "residual", "cell", "reduce_cell", "depth", "stride",
        "stem", "head", "stages", "norm", "pool", "dropout", "resolution", "num_classes",
        "in_channels", "name", "kernal", "decisions", "template", "epochs", 0, None]


def _deep(n: int) -> list:
    out: list = []
    for _ in range(n):
        out = [out]
    return out


VALUES = st.one_of(
    st.sampled_from(NASTY),
    st.sampled_from(PLAUSIBLE),
    st.integers(-2**70, 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.integers(2, 120).map(_deep),
)


def _slots(data: Any, out: list) -> list:
    """Every (container, key) pair inside ``data``, depth first."""
    items = data.items() if isinstance(data, dict) else enumerate(data) \
        if isinstance(data, list) else ()
    for key, value in items:
        out.append((data, key))
        _slots(value, out)
    return out


@st.composite
def damaged(draw: st.DrawFn, bases: list[dict]) -> Any:
    """One of ``bases`` with 0 to 4 random edits: set, delete, add a key, grow a list, scale."""
    data = copy.deepcopy(draw(st.sampled_from(bases)))
    for _ in range(draw(st.integers(0, 4))):
        slots = _slots(data, [])
        if not slots:
            break
        container, key = slots[draw(st.integers(0, len(slots) - 1))]
        action = draw(st.sampled_from(["set", "set", "delete", "add", "grow", "scale"]))
        if action == "set":
            container[key] = copy.deepcopy(draw(VALUES))
        elif action == "delete":
            del container[key]
        elif action == "add" and isinstance(container, dict):
            container[draw(st.sampled_from(KEYS))] = copy.deepcopy(draw(VALUES))
        elif action == "grow" and isinstance(container, list):
            container.extend(copy.deepcopy(container[key])  # copies: YAML makes no aliases
                             for _ in range(draw(st.integers(1, 70))))
        elif action == "scale" and isinstance(container[key], (int, float)):
            container[key] = container[key] * draw(st.sampled_from([-1, 10, 1000, 10**6, 1e300]))
    if draw(st.integers(0, 9)) == 0:  # the whole document replaced
        data = copy.deepcopy(draw(VALUES))
    return data


def _genotype_bases() -> list[dict]:
    zoo = [searchspace.zoo.get(n).to_dict() for n in searchspace.zoo.names()]
    cells = searchspace.load_space("cells")
    nb201 = searchspace.load_space("nb201")
    return zoo + [s.sample(i).to_dict() for s in (cells, nb201) for i in range(12)]


GENOTYPE_BASES = _genotype_bases()
SPACE_BASES = [yaml.safe_load((ROOT / "searchspace/spaces" / f"{n}.yaml").read_text())
               for n in ("cells", "nb201")]
PROFILE_BASES = [yaml.safe_load(p.read_text())
                 for p in sorted((ROOT / "evaluators/profiles").glob("*.yaml"))]

# A damaged genotype as plain data or as the YAML text a user would write.
genotype_inputs = st.tuples(damaged(GENOTYPE_BASES), st.booleans())


def dump(data: Any) -> str:
    """YAML text of plain data (the damaged inputs always dump)."""
    return yaml.dump(data, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), sort_keys=False)


def check_genotype_input(data: Any, as_text: bool) -> str:
    """The genotype property: "valid" (whose cost works and lies under the ceiling, whose key
    and YAML round trip work) or "refused" (GenotypeError); anything else propagates."""
    try:
        g = Genotype.from_yaml(dump(data)) if as_text else Genotype.from_dict(data)
    except GenotypeError:
        return "refused"
    c = searchspace.cost(g)
    assert 0 < c.madds <= MAX_MADDS and 0 < c.params <= MAX_PARAMS, c
    assert searchspace.cost(g, prune=False).madds <= MAX_MADDS
    assert len(g.key()) == 16
    assert Genotype.from_yaml(g.to_yaml()) == g
    return "valid"
