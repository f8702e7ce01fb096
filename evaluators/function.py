"""A user's own scoring function as an Evaluator: ``f(genotype)`` or ``f(genotype, seed)``.

The wrapper keeps the contract for it: the budget is checked before ``f`` is called, an
exception in ``f`` fails that candidate with its message, and a result that is not a finite
number fails it too, saying what came back.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import searchspace
from evaluators.base import Evaluation, Evaluator, Status

__all__ = ["FunctionEvaluator"]


class FunctionEvaluator(Evaluator):
    """Scores a genotype by ``fn(genotype)``, or ``fn(genotype, seed)`` when ``fn``'s second
    argument is required or named ``seed`` (then the score may depend on the seed: ``noisy``).

    Example:
        >>> ev = FunctionEvaluator(lambda g: 1e-9 * searchspace.cost(g).madds, name="madds")
        >>> round(ev.evaluate(searchspace.zoo.get("resnet20")).accuracy, 4)
        0.0406
    """

    def __init__(self, fn: Callable[..., float], name: str | None = None,
                 limits: searchspace.Limits | None = None) -> None:
        if not callable(fn):
            raise TypeError(f"an evaluator is a name, an Evaluator or a function, not "
                            f"{type(fn).__name__}")
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "") or type(fn).__name__
        if self.name == "<lambda>":
            self.name = "function"
        self.takes_seed = _takes_seed(fn)
        self.noisy = self.takes_seed
        self.percent = False  # a score of the user's, not an accuracy
        self.limits = limits or searchspace.Limits()

    def evaluate(self, genotype: searchspace.Genotype, seed: int = 0,
                 assignment: Mapping[str, Any] | None = None) -> Evaluation:
        """The budget checked, then ``fn`` called; its exception or bad result fails the
        candidate with a reason."""
        c = self.limits.cost(genotype)
        rejected = self.budget_check(c)
        if rejected is not None:
            return rejected
        start = time.perf_counter()
        try:
            value = self.fn(genotype, seed) if self.takes_seed else self.fn(genotype)
        except Exception as exc:  # noqa: BLE001 - the user's code: its message is the reason
            line = " ".join(str(exc).split())[:300]
            return self._failed(c, f"error: {type(exc).__name__}: {line}".rstrip(": "))
        seconds = time.perf_counter() - start
        score = _number(value)
        if score is None:
            return self._failed(c, f"error: {self.name} returned {value!r:.60}, not a finite "
                                   "number")
        return Evaluation(Status.OK, c.madds, c.params, score, self.name, seconds,
                          device="cpu")

    def _failed(self, c: searchspace.Cost, reason: str) -> Evaluation:
        return Evaluation(Status.FAILED, c.madds, c.params, split=self.name, reason=reason)


def _number(value: Any) -> float | None:
    """A finite float from a number, a numpy scalar or a one-element tensor; else None."""
    if value is None or isinstance(value, bool | str | bytes):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, RuntimeError):  # RuntimeError: a tensor of several
        return None
    return number if math.isfinite(number) else None


def _takes_seed(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` takes the seed second: a required second positional argument, one
    named ``seed``, or ``*args``."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # a builtin without a signature: one argument
        return False
    if any(p.kind == inspect.Parameter.VAR_POSITIONAL for p in params):
        return True
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    positional = [p for p in params if p.kind in kinds]
    return len(positional) >= 2 and (positional[1].default is inspect.Parameter.empty
                                     or positional[1].name == "seed")
