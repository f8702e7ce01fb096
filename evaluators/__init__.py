"""How good a candidate is: the proxy evaluator (real training by a profile) and tabular ones.

    ev = evaluators.make("proxy-cpu", data="cifar10-jpeg.tar.gz", limits=Limits(madds=150e6))
    ev = evaluators.make("nb201-table", data="shared/data/nb201")
    ev = evaluators.make("nbmacro-table", data="shared/data/nbmacro", limits=Limits(madds=50e6))
    ev = evaluators.FunctionEvaluator(my_score)        # a function of a genotype
    ev.load(); ev.evaluate(genotype, seed, assignment)  # -> Evaluation

Every one keeps the contract of ``evaluators.Evaluator`` (``evaluators/base.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from evaluators.base import Evaluation, Evaluator, Status
from evaluators.data import DataError
from evaluators.function import FunctionEvaluator
from evaluators.proxy import ProxyEvaluator
from evaluators.recipe import RecipeError, check_device, load_profile, profile_names
from evaluators.nbmacro_table import NBMacroMean, NBMacroTable
from evaluators.table import NB201Table
from searchspace import Limits

__all__ = ["make", "names", "known", "as_evaluator", "Evaluator", "Evaluation", "Status",
           "DataError", "ProxyEvaluator", "FunctionEvaluator", "NB201Table", "NBMacroTable",
           "NBMacroMean", "TABLES"]

# evaluators that look a score up instead of training
TABLES = {"nb201-table": NB201Table, "nbmacro-table": NBMacroTable,
          "nbmacro-table-mean": NBMacroMean}


def names() -> list[str]:
    """Every evaluator a user can name: the shipped profiles and the tables."""
    return [*profile_names(), *TABLES]


def known(name: str | Path) -> bool:
    """Whether ``make`` can rebuild an evaluator from ``name`` (a shipped one or a profile
    path), as a resumed run or another worker does; a Python evaluator's name is not."""
    return str(name) in names() or bool(Path(name).suffix)


def make(name: str | Path, data: str | Path | None = None,
         limits: Limits | None = None) -> Evaluator:
    """The evaluator called ``name``: a table, or the proxy trained by that profile (a shipped
    name or a YAML path); RecipeError lists the known names when it is neither."""
    if str(name) in TABLES:
        return TABLES[str(name)](data, limits)
    if not Path(name).suffix and str(name) not in profile_names():
        raise RecipeError(f"unknown evaluator {str(name)!r} (known: {', '.join(names())}, "
                          "or a profile YAML path)")
    recipe = load_profile(name)
    check_device(recipe.device, recipe.name)  # a device this machine lacks: one line, here
    return ProxyEvaluator(recipe, data=data, limits=limits)


def as_evaluator(evaluator: str | Path | Evaluator | Callable[..., float],
                 data: str | Path | None = None, limits: Limits | None = None) -> Evaluator:
    """An Evaluator from what a user has: a name (``make``), an Evaluator (as it is), or a
    function ``f(genotype) -> float`` or ``f(genotype, seed) -> float``."""
    if isinstance(evaluator, Evaluator):
        if not evaluator.name:  # a user's class that names none: its scores need a label
            evaluator.name = type(evaluator).__name__
        return evaluator
    if isinstance(evaluator, str | Path):
        return make(evaluator, data=data, limits=limits)
    return FunctionEvaluator(evaluator, limits=limits)
