"""Search strategies, each an Optuna sampler: rl, evolution, tpe, nsga2, random, and with the
nni extra NNI's own (nni:evolution, nni:rl, nni:tpe, nni:random; see ``nas.nni``).

    sampler = nas.strategies.make("evolution", space=space, seed=0, budget="50M-madds")

Every one proposes only new networks inside the budget while there are any (see ``base``):
ours by redrawing their own proposals, Optuna's through the ``Distinct`` wrapper; in the NAS
loop and, for the five of ``OURS``, in a plain ``study.optimize`` too (NNI's keep their promise
inside the NAS loop only: it tells them what was scored).
"""

from __future__ import annotations

from collections.abc import Callable

import optuna

from nas.errors import UserError
from nas.strategies.base import BudgetedRandom, Fits, Screen, SpaceSampler, distributions
from nas.strategies.distinct import Distinct
from nas.strategies.evolution import RegularizedEvolution
from nas.strategies.rl import ReinforceController
from searchspace import SearchSpace

__all__ = ["make", "require_nni", "NAMES", "OURS", "NNI_NAMES", "MULTI_OBJECTIVE",
           "SpaceSampler", "Distinct", "Screen", "distributions"]


def _tpe(space: SearchSpace, seed: int, fits: Fits | None, screen: Screen | None
         ) -> optuna.samplers.BaseSampler:
    # Multivariate TPE: univariate TPE did no better than random on NAS-Bench-101, because
    # architecture decisions interact. constant_liar keeps parallel workers apart.
    tpe = optuna.samplers.TPESampler(multivariate=True, n_startup_trials=10,
                                     n_ei_candidates=64, constant_liar=True, seed=seed)
    return Distinct(tpe, space, seed, fits, screen=screen)


def _nsga2(space: SearchSpace, seed: int, fits: Fits | None, screen: Screen | None
           ) -> optuna.samplers.BaseSampler:
    return Distinct(optuna.samplers.NSGAIISampler(population_size=16, seed=seed), space, seed,
                    fits, screen=screen)


_FACTORIES: dict[str, Callable[[SearchSpace, int, Fits | None, Screen | None],
                               optuna.samplers.BaseSampler]] = {
    "rl": lambda s, seed, f, sc: ReinforceController(s, seed, f, screen=sc),
    "evolution": lambda s, seed, f, sc: RegularizedEvolution(s, seed, f, screen=sc),
    "tpe": _tpe,
    "nsga2": _nsga2,
    "random": lambda s, seed, f, sc: BudgetedRandom(s, seed, f, screen=sc),
}
OURS = tuple(_FACTORIES)
NNI_NAMES = ("nni:evolution", "nni:rl", "nni:tpe", "nni:random")  # NNI's, with the extra
NAMES = (*OURS, *NNI_NAMES)
MULTI_OBJECTIVE = {"nsga2"}  # maximise accuracy, minimise multiply-adds (or latency)


def make(name: str, space: SearchSpace, seed: int = 0, fits: Fits | None = None,
         screen: Screen | None = None, trials: int | None = None, budget: str | None = None
         ) -> optuna.samplers.BaseSampler:
    """The sampler for strategy ``name``. ``budget`` ("50M-madds") or ``fits(genotype)`` (its
    budget use, <= 1 fits) bounds its proposals; ``screen`` picks each trial's network among
    several proposals; ``trials`` (the search's length, when known) sizes NNI's evolution
    population.

    One of ``OURS`` in a plain Optuna study proposes only new networks inside the budget
    too; when the space has none left it proposes a scored one again (``nas.search`` stops
    there instead).

    Example:
        >>> space = searchspace.load_space("nb201")
        >>> sampler = make("evolution", space=space, seed=0, budget="50M-madds")
        >>> study = optuna.create_study(direction="maximize", sampler=sampler)
        >>> def objective(trial):
        ...     g = space.genotype({n: trial.suggest_categorical(n, c)
        ...                         for n, c in space.decisions.items()})
        ...     return searchspace.cost(g).params / 1e6  # a user's score
        >>> study.optimize(objective, n_trials=20)
        >>> len({space.genotype(t.params).key() for t in study.trials})  # distinct networks
        20
    """
    if budget is not None:
        if fits is not None:
            raise UserError("give a budget or fits, not both")
        fits = _use(budget)
    if name in NNI_NAMES:
        if screen is not None and screen.k > 1:
            raise UserError("--screen works with this project's strategies, not NNI's")
        return require_nni().make(name, space, seed, fits, trials)
    if name not in _FACTORIES:
        raise UserError(f"unknown strategy {name!r} (known: {', '.join(NAMES)})")
    return _FACTORIES[name](space, seed, fits, screen)


def _use(budget: str) -> Fits:
    from nas.budget import parse_budget
    limits = parse_budget(budget).limits
    return lambda g: limits.use(limits.cost(g))


def require_nni():
    """The ``nas.nni`` module, or a one-line UserError that says how to install NNI."""
    try:
        from nas import nni
    except ImportError as exc:
        raise UserError(str(exc).split("\n")[0]) from None
    return nni
