"""Any Optuna sampler made to propose new networks inside the budget (TPE, NSGA-II, ...)."""

from __future__ import annotations

import random
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from nas.strategies.base import Fits, Judge, Screen, Whole, distributions, searches
from searchspace import SearchSpace

__all__ = ["Distinct"]


class Distinct(BaseSampler):
    """Any Optuna sampler, made to propose new networks inside the budget.

    The inner sampler (TPE, NSGA-II, ...) proposes as it would, each decision it leaves to
    independent sampling filled in the way Optuna would fill it; a proposal that is scored
    already or over the budget is redrawn, up to ``tries`` times, then a random new one is
    taken. Every hook is passed on, so the inner sampler keeps its own bookkeeping.
    """

    def __init__(self, inner: BaseSampler, space: SearchSpace, seed: int = 0,
                 fits: Fits | None = None, tries: int = 20, screen: Screen | None = None
                 ) -> None:
        self.inner, self.space, self.seed, self.tries = inner, space, seed, tries
        self.screen = screen
        self.judge = Judge(space, fits)
        self._dists = distributions(space)
        self._whole = Whole(lambda study, trial: self.sample_relative(study, trial,
                                                                       dict(self._dists)))

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial
                                    ) -> dict[str, BaseDistribution]:
        inner = self.inner.infer_relative_search_space(study, trial)
        if not searches(study, self.space, self._dists):
            return inner
        return {**inner, **self._dists}

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if any(search_space.get(n) != d for n, d in self._dists.items()):
            return self._draw(study, trial, search_space, search_space)  # not this space
        relative = {n: d for n, d in self.inner.infer_relative_search_space(study, trial).items()
                    if n in search_space}
        taken = self.judge.taken(study)
        a: dict[str, Any] = {}
        first = None
        for _ in range(self.tries):
            a = self._draw(study, trial, relative, search_space)
            if self.judge.new({n: a[n] for n in self._dists}, taken):
                first = a
                break
        rng = random.Random(hash((self.seed, trial.number, 1)) & 0xFFFFFFFF)
        exhausted = first is None  # the inner sampler has nothing new: screen random networks
        if first is None:
            first = {**a, **self.judge.random_new(rng, taken, study, trial)}

        def draw(j: int) -> dict[str, Any]:
            if exhausted:
                return {**first, **self.space.sample_assignment(rng)}
            return self._draw(study, trial, relative, search_space)
        return self.judge.screened(study, trial, first, taken, self.screen, draw, self.tries)

    def _draw(self, study: Study, trial: FrozenTrial, relative: dict[str, BaseDistribution],
              wanted: dict[str, BaseDistribution]) -> dict[str, Any]:
        # always called, empty space or not: NSGA-II records a trial's generation here
        out = self.inner.sample_relative(study, trial, relative)
        for name, dist in wanted.items():
            if name not in out:
                out[name] = self.inner.sample_independent(study, trial, name, dist)
        return {n: out[n] for n in wanted}

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        if self._dists.get(param_name) == param_distribution:  # a decision of the space
            return self._whole.value(study, trial, param_name)
        return self.inner.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self.inner.before_trial(study, trial)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState,
                    values: list[float] | None) -> None:
        self.inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()
