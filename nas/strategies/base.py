"""What the NAS samplers share: the space as Optuna distributions, seeds, the budget, new keys.

Every proposal is judged before it is made: it must fit the budget and its genotype's key()
must be one the study has not scored (nor is scoring). A strategy's own proposal is redrawn
until it is; when the strategy has nothing new left, a random new network is proposed
(uniform draws, then draws walked down in cost until they fit); only when none is found
either does a scored one come back, the trial marked ``NOTHING_NEW``, and the search loop
then reuses its stored result instead of training it again, and stops.

With a ``Screen``, each trial gathers ``k`` new proposals of the strategy (the first as above,
the others further draws of it) and the screen's ``pick`` (a zero-cost score) keeps the one
that is trained; the trial's ``SCREENED`` system attribute says how many were compared.

A study is one of a space's when the NAS loop marked it so (``mark_study``) or when its trials
assign the space's decisions; in any other study the samplers sample independently, as
Optuna's sampler contract asks. Driven by a plain ``study.optimize`` whose objective suggests
the space's decisions, they keep their promise too: the first decision a trial suggests asks
for a whole new network inside the budget, and the networks taken are decoded from the
decisions of the study's trials (the NAS loop records their keys instead).
"""

from __future__ import annotations

import abc
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from nas import optuna_internals as internals
from nas.trial import TAKEN, Record, Status, status_of
from searchspace import Genotype, GenotypeError, SearchSpace

__all__ = ["SpaceSampler", "Fits", "Screen", "distributions", "history", "taken_keys",
           "BudgetedRandom", "Judge", "Whole", "NOTHING_NEW", "SCREENED", "mark_study",
           "marked", "searches"]

Fits = Callable[[Genotype], float]  # genotype -> budget use (max of cost / limit); <= 1 fits
MAX_TRIES = 100  # redraws of a strategy's own proposal before a random new one
MAX_RESAMPLES = 500  # random draws looking for a new network that fits
NOTHING_NEW = "nothing_new"  # trial system attribute: no new network fits the budget
SPACE_ATTR = "nas:space"  # study system attribute: the space whose decisions it searches
SCREENED = "nas:screened"  # trial system attribute: proposals the screen compared


@dataclass(frozen=True)
class Screen:
    """Each trial: up to ``k`` new proposals, and ``pick(proposals)`` -> the index to train."""

    k: int
    pick: Callable[[list[dict[str, Any]]], int]


def distributions(space: SearchSpace) -> dict[str, BaseDistribution]:
    """One categorical distribution per decision; fixed, so Optuna never sees them change."""
    return {name: CategoricalDistribution(choices) for name, choices in space.decisions.items()}


_MISSING = object()


def history(study: Study, space: SearchSpace) -> list[FrozenTrial]:
    """Scored, feasible trials that assign every decision of ``space``, in completion order
    (Real et al. age a population by completion, not by when a trial was asked)."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    ok = [t for t in trials if all(v <= 0 for v in t.constraints.values())
          and status_of(t, missing=Status.OK) == Status.OK
          and all(t.params.get(n, _MISSING) in c for n, c in space.decisions.items())]
    return sorted(ok, key=lambda t: (t.datetime_complete or t.datetime_start, t.number))


def objective(trial: FrozenTrial) -> float:
    """The value a strategy maximises: the first objective (validation accuracy)."""
    return trial.values[0]


def mark_study(study: Study, space: SearchSpace) -> None:
    """Say that ``study`` searches ``space`` (so even its first trial is proposed whole)."""
    internals.set_study_system_attr(study, SPACE_ATTR, space.name)


def marked(study: Study, space: SearchSpace) -> bool:
    """Whether the NAS loop runs ``study`` over ``space`` (``mark_study``)."""
    return internals.study_system_attrs(study).get(SPACE_ATTR) == space.name


def searches(study: Study, space: SearchSpace, dists: dict[str, BaseDistribution]) -> bool:
    """Whether ``study`` is a search of ``space``: marked so, or its trials assign every
    decision with the space's own distributions."""
    if marked(study, space):
        return True
    for t in study.get_trials(deepcopy=False):
        if t.distributions and all(t.distributions.get(n) == d for n, d in dists.items()):
            return True
    return False


def taken_keys(study: Study) -> set[str]:
    """Keys of the networks the study has scored or is scoring."""
    trials = map(Record.of, study.get_trials(deepcopy=False))
    return {t.key for t in trials if t.status in TAKEN and t.key}


class Judge:
    """Decodes an assignment once and remembers its budget use and its key."""

    def __init__(self, space: SearchSpace, fits: Fits | None) -> None:
        self.space, self.use = space, fits or (lambda g: 0.0)
        self._memo: dict[tuple, tuple[float, str]] = {}
        self._floor: float | None = None  # budget use of the space's cheapest network

    def __call__(self, a: dict[str, Any]) -> tuple[float, str]:
        k = tuple(a[n] for n in self.space.decisions)
        if k not in self._memo:
            if len(self._memo) > 100_000:
                self._memo.clear()
            try:
                g = self.space.genotype(a)
            except GenotypeError:  # a combination past the limits: never proposed
                self._memo[k] = (math.inf, "")
            else:
                self._memo[k] = (self.use(g), g.key())
        return self._memo[k]

    def taken(self, study: Study) -> set[str]:
        """Keys of the networks ``study`` has scored or is scoring: as the NAS loop records
        them, or, in a plain Optuna study (``study.optimize``), decoded from the decisions
        of every trial that was run."""
        if marked(study, self.space):
            return taken_keys(study)
        keys = set()
        for t in study.get_trials(deepcopy=False):
            if t.state == TrialState.WAITING or any(
                    t.params.get(n, _MISSING) not in c for n, c in self.space.decisions.items()):
                continue  # not a network of this space
            key = self({n: t.params[n] for n in self.space.decisions})[1]
            if key:
                keys.add(key)
        return keys

    def new(self, a: dict[str, Any], taken: set[str]) -> bool:
        """Fits the budget, and not scored yet."""
        use, key = self(a)
        return use <= 1.0 and key not in taken

    def screened(self, study: Study, trial: FrozenTrial, first: dict[str, Any],
                 taken: set[str], screen: Screen | None,
                 draw: Callable[[int], dict[str, Any]], tries: int) -> dict[str, Any]:
        """``first``, or with a screen the pick among it and up to ``k - 1`` further new
        proposals (``draw(j)`` makes one; each gets ``tries`` redraws to be new)."""
        system = internals.trial_system_attrs(study, internals.trial_id(trial))
        if screen is None or screen.k <= 1 or system.get(NOTHING_NEW):
            return first

        def own(a: dict[str, Any]) -> dict[str, Any]:
            return {n: a[n] for n in self.space.decisions}

        pool, keys = [first], set(taken) | {self(own(first))[1]}
        for j in range(1, screen.k):
            for _ in range(tries):
                a = draw(j)
                if self.new(own(a), keys):
                    pool.append(a)
                    keys.add(self(own(a))[1])
                    break
        chosen = pool[screen.pick([own(a) for a in pool])]
        internals.set_trial_system_attr(study, internals.trial_id(trial), SCREENED, len(pool))
        return chosen

    def random_new(self, rng: random.Random, taken: set[str], study: Study,
                   trial: FrozenTrial) -> dict[str, Any]:
        """A random new network inside the budget: uniform draws, then draws walked down in
        cost (one decision at a time) until they fit. When none is found, a scored one (or,
        when nothing fits, an over-budget one), and the trial is marked ``NOTHING_NEW``."""
        fallback = None
        for _ in range(MAX_RESAMPLES):
            a = self.space.sample_assignment(rng)
            use, key = self(a)
            if use <= 1.0 and key not in taken:
                return a
            if use <= 1.0 and fallback is None:
                fallback = a
        if self._floor is None:
            self._floor = self.use(self.space.cheapest(self.use))
        for _ in range(20 if self._floor <= 1.0 else 0):
            a = self._descend(self.space.sample_assignment(rng), rng)
            if self.new(a, taken):
                return a
            if fallback is None and self(a)[0] <= 1.0:
                fallback = a
        internals.set_trial_system_attr(study, internals.trial_id(trial), NOTHING_NEW, True)
        return fallback or a

    def _descend(self, a: dict[str, Any], rng: random.Random) -> dict[str, Any]:
        """Random single-decision changes that lower the budget use, until it fits."""
        use = self(a)[0]
        for _ in range(200):
            if use <= 1.0:
                break
            name = rng.choice(list(self.space.decisions))
            trial = {**a, name: rng.choice(self.space.decisions[name])}
            if self(trial)[0] < use:
                a, use = trial, self(trial)[0]
        return a


class Whole:
    """A whole proposal per trial, for a study that suggests a space's decisions one by one
    before Optuna knows it searches that space (a plain ``study.optimize``'s first trials):
    the first decision asks for the whole network, the others are read from it."""

    def __init__(self, propose: Callable[[Study, FrozenTrial], dict[str, Any]]) -> None:
        self.propose = propose
        self._made: dict[tuple[int, int, int], dict[str, Any]] = {}

    def value(self, study: Study, trial: FrozenTrial, name: str) -> Any:
        key = (id(internals.storage_of(study)), internals.study_id(study),
               internals.trial_id(trial))
        if key not in self._made:
            while len(self._made) >= 256:  # the oldest: trials long finished
                del self._made[next(iter(self._made))]
            self._made[key] = self.propose(study, trial)
        return self._made[key][name]


class SpaceSampler(BaseSampler):
    """A sampler that proposes whole assignments of a space: new networks inside the budget.

    Subclasses implement ``propose(study, trial, rng)``, one draw of the strategy; this class
    redraws it until it is new and fits, and owns the Optuna plumbing. Randomness for a trial
    comes from (seed, trial number) only, so the same seed gives the same search. Parameters
    outside the space, or a study of other parameters, are sampled independently
    (uniformly), as Optuna's sampler contract asks.
    """

    def __init__(self, space: SearchSpace, seed: int = 0, fits: Fits | None = None,
                 screen: Screen | None = None) -> None:
        self.space = space
        self.seed = seed
        self.screen = screen
        self.judge = Judge(space, fits)
        self._dists = distributions(space)
        self._fallback = RandomSampler(seed=seed)
        self._whole = Whole(self.propose_new)

    def rng(self, trial: FrozenTrial, salt: int = 0) -> random.Random:
        """The random stream of one trial."""
        return random.Random(hash((self.seed, trial.number, salt)) & 0xFFFFFFFF)

    def history(self, study: Study) -> list[FrozenTrial]:
        """This study's scored trials of this space, in completion order."""
        return history(study, self.space)

    @abc.abstractmethod
    def propose(self, study: Study, trial: FrozenTrial, rng: random.Random) -> dict[str, Any]:
        """One draw of the strategy: a full assignment for ``trial``, drawn with ``rng``."""

    def propose_new(self, study: Study, trial: FrozenTrial) -> dict[str, Any]:
        """The strategy's proposal, redrawn until it is new and fits (see the module doc)."""
        rng = self.rng(trial)
        taken = self.judge.taken(study)
        first = None
        for _ in range(MAX_TRIES):
            a = self.propose(study, trial, rng)
            if self.judge.new(a, taken):
                first = a
                break
        exhausted = first is None  # the strategy has nothing new: screen random networks
        if first is None:
            first = self.judge.random_new(rng, taken, study, trial)
        rngs: dict[int, random.Random] = {}

        def draw(j: int) -> dict[str, Any]:
            if j not in rngs:
                rngs[j] = self.rng(trial, j)
                self.new_slot()
            if exhausted:
                return self.space.sample_assignment(rngs[j])
            return self.propose(study, trial, rngs[j])
        return self.judge.screened(study, trial, first, taken, self.screen, draw, MAX_TRIES)

    def new_slot(self) -> None:
        """A screen starts another proposal for the same trial (a strategy that flattens its
        redraws starts again from its own distribution)."""

    # --- optuna.samplers.BaseSampler ---------------------------------------------------------
    def infer_relative_search_space(self, study: Study, trial: FrozenTrial
                                    ) -> dict[str, BaseDistribution]:
        return dict(self._dists) if searches(study, self.space, self._dists) else {}

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        out = {}
        if all(search_space.get(n) == d for n, d in self._dists.items()):
            proposal = self.propose_new(study, trial)  # a search of this space: a whole network
            out = dict(proposal)
        for name, dist in search_space.items():
            if name not in out:
                out[name] = self._fallback.sample_independent(study, trial, name, dist)
        return out

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        if self._dists.get(param_name) == param_distribution:  # a decision of the space
            return self._whole.value(study, trial, param_name)
        return self._fallback.sample_independent(study, trial, param_name, param_distribution)

    def reseed_rng(self) -> None:
        self._fallback.reseed_rng()


class BudgetedRandom(SpaceSampler):
    """Uniform random search over new networks inside the budget: the baseline to beat."""

    def propose(self, study: Study, trial: FrozenTrial, rng: random.Random) -> dict[str, Any]:
        return self.space.sample_assignment(rng)


optuna.logging.set_verbosity(optuna.logging.WARNING)
