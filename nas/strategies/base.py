"""What the NAS samplers share: the space as Optuna distributions, seeds, the budget check."""

from __future__ import annotations

import abc
import random
from collections.abc import Callable
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from searchspace import SearchSpace

__all__ = ["SpaceSampler", "Feasible", "distributions", "completed"]

Feasible = Callable[[dict[str, Any]], bool]  # assignment -> fits the budget
MAX_RESAMPLES = 200


def distributions(space: SearchSpace) -> dict[str, BaseDistribution]:
    """One categorical distribution per decision; fixed, so Optuna never sees them change."""
    return {name: CategoricalDistribution(choices) for name, choices in space.decisions.items()}


def completed(study: Study) -> list[FrozenTrial]:
    """Finished, scored, feasible trials in trial-number order (the state every sampler reads)."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    ok = [t for t in trials if all(v <= 0 for v in t.constraints.values())]
    return sorted(ok, key=lambda t: t.number)


def objective(trial: FrozenTrial) -> float:
    """The value a strategy maximises: the first objective (validation accuracy)."""
    return trial.values[0]


class SpaceSampler(BaseSampler):
    """A sampler that proposes whole assignments of a space, resampled inside the budget.

    Subclasses implement ``propose(study, trial, rng)``; this class owns the Optuna plumbing
    and the budget check. Randomness for a trial comes from (seed, trial number) only, so
    proposals do not depend on which worker makes them.
    """

    def __init__(self, space: SearchSpace, seed: int = 0, feasible: Feasible | None = None
                 ) -> None:
        self.space = space
        self.seed = seed
        self.feasible = feasible or (lambda a: True)
        self._dists = distributions(space)
        self._fallback = RandomSampler(seed=seed)

    def rng(self, trial: FrozenTrial, salt: int = 0) -> random.Random:
        """The random stream of one trial."""
        return random.Random(hash((self.seed, trial.number, salt)) & 0xFFFFFFFF)

    def random_assignment(self, rng: random.Random) -> dict[str, Any]:
        """A uniformly random assignment inside the budget (rejection sampling)."""
        a = self.space.sample_assignment(rng)
        for _ in range(MAX_RESAMPLES):
            if self.feasible(a):
                return a
            a = self.space.sample_assignment(rng)
        return a

    @abc.abstractmethod
    def propose(self, study: Study, trial: FrozenTrial, rng: random.Random) -> dict[str, Any]:
        """A full assignment for ``trial``, drawn with ``rng``."""

    # --- optuna.samplers.BaseSampler ---------------------------------------------------------
    def infer_relative_search_space(self, study: Study, trial: FrozenTrial
                                    ) -> dict[str, BaseDistribution]:
        return dict(self._dists)

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if not search_space:
            return {}
        proposal = self.propose(study, trial, self.rng(trial))
        return {k: v for k, v in proposal.items() if k in search_space}

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._fallback.sample_independent(study, trial, param_name, param_distribution)


class BudgetedRandom(SpaceSampler):
    """Uniform random search inside the budget: the baseline every strategy must beat."""

    def propose(self, study: Study, trial: FrozenTrial, rng: random.Random) -> dict[str, Any]:
        return self.random_assignment(rng)


optuna.logging.set_verbosity(optuna.logging.WARNING)
