"""The Evaluator contract (``evaluators/base.py``), one suite over every evaluator we ship.

As Optuna's sampler contract runs over our samplers: the proxy (real training on real
images, a thinned recipe), NAS-Bench-201's and NAS-Bench-Macro's tables (when their files are
here) and the wrapper of a user's function. Each must read nothing when made, fail to load in
one line, reject an over-budget network unbuilt, score a network of its own with its cost, give
the same score for the same seed, and answer a network it cannot score with a failure, not an
exception.
"""

from __future__ import annotations

import json
import math
import os
import random
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import evaluators
import searchspace
from evaluators import DataError, Evaluator, FunctionEvaluator, Status
from evaluators.recipe import load_profile
from nas.trial import Status as TrialStatus
from searchspace import Limits

ROOT = Path(__file__).resolve().parents[1]
NB201 = Path(os.environ.get("NAS_NB201", ROOT.parent / "shared" / "data" / "nb201"))
NBMACRO = Path(os.environ.get("NAS_NBMACRO", ROOT.parent / "shared" / "data" / "nbmacro"))
LIMIT = 50e6  # multiply-adds
TINY = dict(epochs=1, train_subset=512, eval_subset=500, batch_size=64, lr=0.1,
            time_limit=0, device="cpu")


@dataclass
class Case:
    """How to make one evaluator, and networks it can and cannot score."""

    make: object  # (data, limits) -> Evaluator
    space: str | None  # its template's space: members are drawn from it
    data: Path | None  # None: it reads nothing


def _calls() -> dict[str, int]:
    return {"n": 0}


CALLS = _calls()


def _score(g: searchspace.Genotype) -> float:
    CALLS["n"] += 1
    return 1e-9 * searchspace.cost(g).params


def _score_seeded(g: searchspace.Genotype, seed: int) -> float:
    CALLS["n"] += 1
    return 1e-9 * searchspace.cost(g).params + 1e-3 * (seed % 7)


CASES = {
    "proxy": Case(lambda data, limits: evaluators.ProxyEvaluator(
        load_profile("proxy-cpu").replace(**TINY), data=data, limits=limits), None,
        Path(os.environ.get("NAS_TEST_DATA", ROOT.parent / "shared" / "data" /
                            "cifar10-jpeg.tar.gz"))),
    "nb201-table": Case(lambda data, limits: evaluators.make("nb201-table", data, limits),
                        "nb201", NB201),
    "nbmacro-table": Case(lambda data, limits: evaluators.make("nbmacro-table", data, limits),
                          "nbmacro", NBMACRO),
    "nbmacro-table-mean": Case(lambda data, limits: evaluators.make("nbmacro-table-mean", data,
                                                                    limits), "nbmacro", NBMACRO),
    "function": Case(lambda data, limits: FunctionEvaluator(_score, limits=limits), None, None),
    "function(g, seed)": Case(lambda data, limits: FunctionEvaluator(_score_seeded,
                                                                     limits=limits), None, None),
}


@pytest.fixture(params=list(CASES), scope="module")
def case(request) -> Case:
    c = CASES[request.param]
    if c.data is not None and not c.data.exists():
        pytest.skip(f"{request.param}: its data is not here ({c.data})")
    return c


@pytest.fixture(scope="module")
def ev(case: Case) -> Evaluator:
    e = case.make(case.data, Limits(madds=LIMIT))
    e.load()
    return e


def _drawn(case: Case, fits: bool) -> tuple[searchspace.Genotype, dict | None]:
    """A network the evaluator can score (its space's, or a small zoo net), under or over
    the budget."""
    if case.space is None:
        g = searchspace.scale(searchspace.zoo.get("resnet20"), width=0.5) if fits \
            else searchspace.zoo.get("resnet56")
        return g, None
    space = searchspace.load_space(case.space)
    rng = random.Random(0)
    for _ in range(1000):
        a = space.sample_assignment(rng)
        g = space.genotype(a)
        if (searchspace.cost(g).madds <= LIMIT) == fits:
            return g, a
    raise AssertionError("no such network in the space")


def test_it_keeps_the_contract_s_attributes(ev: Evaluator, case: Case) -> None:
    assert isinstance(ev, Evaluator) and isinstance(ev.name, str) and ev.name
    assert isinstance(ev.noisy, bool) and isinstance(ev.device, torch.device)
    assert ev.template == case.space and ev.scores_any_genotype == (case.space is None)
    if ev.template is not None:
        assert searchspace.load_space(ev.template).template == ev.template


def test_its_outcomes_are_the_search_s_words() -> None:
    assert {s.value for s in Status} <= {s.value for s in TrialStatus}


def test_making_it_reads_nothing_and_loading_fails_in_one_line(case: Case,
                                                               tmp_path: Path) -> None:
    e = case.make(tmp_path / "absent", Limits())  # no error yet: nothing is read
    if case.data is None:
        e.load()  # nothing to read
        return
    with pytest.raises(DataError) as info:
        e.load()
    assert "\n" not in str(info.value) and str(info.value)


def test_an_over_budget_network_is_rejected_unbuilt(ev: Evaluator, case: Case) -> None:
    g, a = _drawn(case, fits=False)
    before = CALLS["n"]
    r = ev.evaluate(g, 0, a)
    assert r.status == Status.REJECTED and "budget" in r.reason
    assert (r.madds, r.params) == (searchspace.cost(g).madds, searchspace.cost(g).params)
    assert r.accuracy is None and CALLS["n"] == before  # a function is not even called


def test_a_network_of_its_own_is_scored_with_its_cost(ev: Evaluator, case: Case) -> None:
    g, a = _drawn(case, fits=True)
    r = ev.evaluate(g, 0, a)
    assert r.status == Status.OK, r.reason
    assert isinstance(r.accuracy, float) and math.isfinite(r.accuracy)
    assert (r.madds, r.params) == (searchspace.cost(g).madds, searchspace.cost(g).params)
    assert r.split and json.loads(json.dumps(r.to_dict()))["status"] == "ok"


def test_the_same_seed_gives_the_same_score(ev: Evaluator, case: Case) -> None:
    g, a = _drawn(case, fits=True)
    assert ev.evaluate(g, 3, a).accuracy == ev.evaluate(g, 3, a).accuracy


def test_a_network_outside_its_template_fails_unless_it_scores_any(ev: Evaluator) -> None:
    g = searchspace.scale(searchspace.zoo.get("resnet20"), width=0.5)  # in no table
    r = ev.evaluate(g, 0, None)
    if ev.scores_any_genotype:
        assert r.status == Status.OK, r.reason
    else:
        assert r.status == Status.FAILED and r.reason and r.accuracy is None


def test_a_function_s_exception_or_bad_result_fails_the_candidate() -> None:
    g = searchspace.zoo.get("resnet20")

    def broken(genotype):
        raise RuntimeError("my scorer\nhas two lines")

    r = FunctionEvaluator(broken).evaluate(g)
    assert r.status == Status.FAILED and r.reason == "error: RuntimeError: my scorer has two lines"
    def returning(value):
        return lambda genotype: value

    for bad in (float("nan"), None, "0.9", True):
        r = FunctionEvaluator(returning(bad), name="odd").evaluate(g)
        assert r.status == Status.FAILED and "odd returned" in r.reason, bad
    assert not FunctionEvaluator(_score).noisy and FunctionEvaluator(_score_seeded).noisy


def test_a_function_takes_the_seed_only_when_it_asks_for_it() -> None:
    def options(genotype, verbose=False):
        return 0.5

    def seeded(genotype, seed=0):
        return 0.5 + seed

    assert not FunctionEvaluator(options).takes_seed
    assert FunctionEvaluator(seeded).evaluate(searchspace.zoo.get("resnet20"), 2).accuracy == 2.5
    r = FunctionEvaluator(lambda genotype: torch.tensor(0.25)).evaluate(
        searchspace.zoo.get("resnet20"))
    assert r.status == Status.OK and r.accuracy == 0.25  # a 0-d tensor is a number
