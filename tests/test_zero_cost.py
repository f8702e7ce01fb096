"""Zero-cost proxies, rank correlations and screening inside the search loop."""

from __future__ import annotations

import math

import optuna
import pytest

import searchspace
from evaluators.zero_cost import PROXIES, ZeroCost, kendall_tau, ranks, spearman_rho, vote
from nas.strategies.base import Screen
from nas.strategies.synthetic import SyntheticObjective
from nas.loop import Stop, run_worker
from searchspace import Limits, nb201

# three NAS-Bench-201 cells far apart in the table (valid_acc_200ep): 91.55, 67.38, 9.71
BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|" \
       "nor_conv_3x3~2|"
POOR = "|avg_pool_3x3~0|+|avg_pool_3x3~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|" \
       "avg_pool_3x3~2|"
DEAD = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


def test_rank_correlations_match_their_definitions() -> None:
    assert list(ranks([3.0, 1.0, 3.0, -math.inf])) == [3.5, 2.0, 3.5, 1.0]
    # tau-b with a tie in b: (8 concordant - 1 discordant) / sqrt(10 * 9)
    assert kendall_tau([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) == pytest.approx(7 / math.sqrt(90))
    assert spearman_rho([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) == pytest.approx(0.8207826816681)
    assert kendall_tau([1, 2, 3], [3, 2, 1]) == -1.0
    assert list(vote([{"a": 1, "b": 9}, {"a": 2, "b": 8}], ["a", "b"])) == [3.0, 3.0]


def test_every_proxy_ranks_a_good_cell_over_a_poor_one_deterministically(cifar_jpeg) -> None:
    zc = ZeroCost(cifar_jpeg, seed=0)
    names = [*PROXIES, "params"]
    best, poor = (zc.score(nb201.genotype(nb201.parse_arch(a)), names) for a in (BEST, POOR))
    for name in names:
        assert math.isfinite(best[name]) and best[name] > poor[name], name
    again = ZeroCost(cifar_jpeg, seed=0).score(nb201.genotype(nb201.parse_arch(POOR)), names)
    assert all(again[n] == poor[n] for n in names)
    dead = zc.score(nb201.genotype(nb201.parse_arch(DEAD)), ["synflow"])
    assert dead["synflow"] == -math.inf  # no path from the input to the output
    with pytest.raises(ValueError, match="unknown zero-cost proxy 'nope'"):
        zc.score(nb201.genotype(nb201.parse_arch(POOR)), ["nope"])


def test_a_screen_trains_its_pick_of_new_proposals() -> None:
    space = searchspace.load_space("cells")
    objective = SyntheticObjective(space, seed=0)
    pools: list[int] = []

    def pick(pool):  # the cheapest of the pool, as a stand-in score
        pools.append(len(pool))
        costs = [searchspace.cost(space.genotype(a)).madds for a in pool]
        return costs.index(min(costs))

    results = {}
    for k in (1, 5):
        storage = optuna.storages.InMemoryStorage()
        run_worker(storage, "s", space, "random", 0, objective.evaluate, Limits(madds=600e6),
                   Stop(trials=12), screen=Screen(k, pick) if k > 1 else None)
        trials = [t for t in optuna.load_study(study_name="s", storage=storage).get_trials()
                  if t.user_attrs.get("status") == "ok"]
        results[k] = trials
    assert pools and all(n == 5 for n in pools)
    assert [t.user_attrs.get("screened") for t in results[5]] == [5] * 12
    keys = [t.user_attrs["key"] for t in results[5]]
    assert len(set(keys)) == 12  # still new networks only
    mean = {k: sum(t.user_attrs["madds"] for t in ts) / 12 for k, ts in results.items()}
    assert mean[5] < 0.6 * mean[1]  # the pick, not the first proposal, was trained


@pytest.mark.parametrize("args,needle", [
    (["--screen", "0"], "--screen must be at least 1"),
    (["--screen", "4", "--screen-by", "nope"], "--screen-by 'nope': expected one of"),
    (["--screen", "4", "--screen-by", "naswot+params"], "vote:A+B"),
])
def test_search_screen_bad_input(args, needle, tmp_path, refused) -> None:
    assert needle in refused("search", "--budget", "600M", "--out", tmp_path / "run", *args)
