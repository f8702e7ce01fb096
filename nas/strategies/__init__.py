"""Search strategies, each an Optuna sampler: rl, evolution, tpe, nsga2, random.

    sampler = nas.strategies.make("evolution", space=space, seed=0, feasible=fits)
"""

from __future__ import annotations

from collections.abc import Callable

import optuna

from nas.errors import UserError
from nas.strategies.base import BudgetedRandom, Feasible, SpaceSampler, distributions
from nas.strategies.evolution import RegularizedEvolution
from nas.strategies.rl import ReinforceController
from searchspace import SearchSpace

__all__ = ["make", "NAMES", "MULTI_OBJECTIVE", "SpaceSampler", "distributions"]


def _tpe(space: SearchSpace, seed: int, feasible: Feasible | None) -> optuna.samplers.BaseSampler:
    # Multivariate TPE: univariate TPE did no better than random on NAS-Bench-101, because
    # architecture decisions interact. constant_liar keeps parallel workers apart.
    return optuna.samplers.TPESampler(multivariate=True, n_startup_trials=10,
                                      n_ei_candidates=64, constant_liar=True, seed=seed)


def _nsga2(space: SearchSpace, seed: int, feasible: Feasible | None
           ) -> optuna.samplers.BaseSampler:
    return optuna.samplers.NSGAIISampler(population_size=16, seed=seed)


_FACTORIES: dict[str, Callable[[SearchSpace, int, Feasible | None],
                               optuna.samplers.BaseSampler]] = {
    "rl": lambda s, seed, f: ReinforceController(s, seed, f),
    "evolution": lambda s, seed, f: RegularizedEvolution(s, seed, f),
    "tpe": _tpe,
    "nsga2": _nsga2,
    "random": lambda s, seed, f: BudgetedRandom(s, seed, f),
}
NAMES = tuple(_FACTORIES)
MULTI_OBJECTIVE = {"nsga2"}  # maximise accuracy, minimise multiply-adds


def make(name: str, space: SearchSpace, seed: int = 0, feasible: Feasible | None = None
         ) -> optuna.samplers.BaseSampler:
    """The sampler for strategy ``name``; ``feasible(assignment)`` says if it fits the budget.

    Samplers of our own (rl, evolution, random) resample inside the budget before proposing;
    Optuna's (tpe, nsga2) learn the feasible region from each trial's constraint.
    """
    if name not in _FACTORIES:
        raise UserError(f"unknown strategy {name!r} (known: {', '.join(NAMES)})")
    return _FACTORIES[name](space, seed, feasible)
