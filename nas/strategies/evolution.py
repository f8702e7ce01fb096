"""Regularized evolution (Real et al. 2019): aging population, tournament, one mutation.

No hidden state: the population is the last ``population`` completed trials of the study,
so parallel workers and resumed runs continue the same evolution.
"""

from __future__ import annotations

import random
from typing import Any

from optuna.study import Study
from optuna.trial import FrozenTrial

from nas.strategies.base import MAX_RESAMPLES, SpaceSampler, completed, objective

__all__ = ["RegularizedEvolution"]


class RegularizedEvolution(SpaceSampler):
    """Tournament of ``sample`` among the newest ``population``; mutate one decision."""

    def __init__(self, space, seed: int = 0, feasible=None, population: int = 20,
                 sample: int = 5) -> None:
        super().__init__(space, seed, feasible)
        self.population = population
        self.sample = sample

    def propose(self, study: Study, trial: FrozenTrial, rng: random.Random) -> dict[str, Any]:
        done = completed(study)
        if len(done) < self.population:
            return self.random_assignment(rng)
        alive = done[-self.population:]  # aging: the oldest die first
        contestants = rng.sample(alive, min(self.sample, len(alive)))
        parent = max(contestants, key=objective)
        return self.mutate(dict(parent.params), rng)

    def mutate(self, parent: dict[str, Any], rng: random.Random) -> dict[str, Any]:
        """``parent`` with one decision changed to another of its choices, inside the budget."""
        names = [n for n, c in self.space.decisions.items() if len(c) > 1]
        child = parent
        for _ in range(MAX_RESAMPLES):
            name = rng.choice(names)
            options = [c for c in self.space.decisions[name] if c != parent.get(name)]
            child = {**parent, name: rng.choice(options)}
            if self.feasible(child):
                return child
        return child
