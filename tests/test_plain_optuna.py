"""Our samplers driven by a plain Optuna ``study.optimize``: new networks inside the budget.

A researcher who takes ``nas.strategies.make`` into an Optuna study of their own gets what the
NAS loop gets: every trial a network not tried before, inside the budget (with the old code,
``rl`` repeated 83 of 100 networks here and evolution 24).
"""

from __future__ import annotations

import random

import optuna
import pytest

import searchspace
from nas.budget import parse_budget
from nas.strategies import OURS, make

SPACE = searchspace.load_space("nb201")
BUDGET = "40M-madds"  # about a third of NAS-Bench-201's cells fit


def _objective(keys: list[str], costs: list[float]):
    def objective(trial: optuna.Trial) -> float:
        g = SPACE.genotype({n: trial.suggest_categorical(n, c)
                            for n, c in SPACE.decisions.items()})
        keys.append(g.key())
        costs.append(searchspace.cost(g).madds)
        return (searchspace.cost(g).params % 997) / 997  # any score a user computes
    return objective


@pytest.mark.parametrize("name", OURS)
def test_each_trial_of_a_plain_study_is_a_new_network_inside_the_budget(name: str) -> None:
    keys: list[str] = []
    costs: list[float] = []
    study = optuna.create_study(direction="maximize",
                                sampler=make(name, space=SPACE, seed=1, budget=BUDGET))
    study.optimize(_objective(keys, costs), n_trials=60)
    limit = parse_budget(BUDGET).limits.madds
    assert len(keys) == 60 and len(set(keys)) == 60
    assert max(costs) <= limit
    fits = sum(searchspace.cost(SPACE.genotype(a)).madds <= limit
               for a in (SPACE.sample_assignment(random.Random(i))
                         for i in range(300)))
    assert fits < 200  # the budget binds: a random cell is often over it


def test_a_plain_study_gives_the_same_networks_for_the_same_seed() -> None:
    runs = []
    for _ in range(2):
        keys: list[str] = []
        study = optuna.create_study(direction="maximize",
                                    sampler=make("evolution", space=SPACE, seed=3,
                                                 budget=BUDGET))
        study.optimize(_objective(keys, []), n_trials=25)
        runs.append(keys)
    assert runs[0] == runs[1]


def test_budget_and_fits_together_are_refused() -> None:
    from nas.errors import UserError

    with pytest.raises(UserError, match="a budget or fits"):
        make("rl", space=SPACE, budget=BUDGET, fits=lambda g: 0.0)
