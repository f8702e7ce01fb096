"""The final choice under a noisy reward: the few best networks trained again, named by mean.

One short training of a network differs from the next by as much as the best networks differ
from each other, so the trial with the highest single score is often a lucky seed. After the
search, the ``top`` networks with the best single scores are each trained ``seeds`` more times
(the training seed of their first trial plus 1, 2, ...), every training a trial of the study
(status ``rescored``, ``rescore_of`` naming the first), counted in the run's trials; the
winner is the rescored network of highest mean, and ``Choice`` says how sure that is.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState, create_trial

import searchspace
from evaluators.base import Evaluation
from evaluators.base import Status as Outcome
from nas.strategies import MULTI_OBJECTIVE
from nas.strategies.base import distributions
from nas.trial import Record, Status, fields_of, records

__all__ = ["Rescore", "Choice", "rescore", "choose"]

Evaluate = Callable[[searchspace.Genotype, int, dict[str, Any]], Evaluation]


@dataclass(frozen=True)
class Rescore:
    """How the final choice is made: ``top`` networks, ``seeds`` more trainings each."""

    top: int = 0  # 0: the best single score wins, nothing is trained again
    seeds: int = 2

    @property
    def trainings(self) -> int:
        """Trainings the choice costs, taken from the run's trials."""
        return self.top * self.seeds if self.top > 1 else 0


@dataclass(frozen=True)
class Choice:
    """The winner: its first trial, every score it got, and how far it leads."""

    record: Record
    scores: tuple[float, ...]  # its trainings' accuracies, the first trial's first
    runner_up: tuple[Record, tuple[float, ...]] | None = None
    noise_sd: float | None = None  # pooled seed sd of the rescored networks
    pool: int = 1  # networks it was chosen among (the rescored ones, or every scored one)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.scores)

    @property
    def confidence(self) -> float | None:
        """P(the winner's true mean beats the runner-up's), normal approximation with the
        pooled seed noise; None when there is nothing to compare."""
        if self.runner_up is None or not self.noise_sd:
            return None
        other = self.runner_up[1]
        se = self.noise_sd * math.sqrt(1 / len(self.scores) + 1 / len(other))
        z = (self.mean - statistics.fmean(other)) / se
        return 0.5 * (1 + math.erf(z / math.sqrt(2)))


    def describe(self, evaluator: str, noisy: bool = True, percent: bool = True) -> str:
        """The report's paragraph on how the winner was chosen and how sure that is (scores
        as accuracies in percent, or with ``percent=False`` as they are)."""
        fmt, unit = ((lambda s: f"{100 * s:.2f}"), "%") if percent else ((lambda s: f"{s:.4g}"),
                                                                         "")
        n, pct = len(self.scores), ", ".join(fmt(s) for s in self.scores)
        if n == 1 and not noisy:
            return (f"The winner is the network of best score (trial {self.record.number}), "
                    f"by {evaluator}, which gives a network one score whatever the seed.")
        if n == 1:
            return (f"The winner is the network of best single score (trial "
                    f"{self.record.number}), one training by {evaluator}: with a noisy reward "
                    "it may be a lucky seed (`--rescore K` trains the K best again).")
        text = (f"The winner was chosen among the {self.pool} networks of best single scores, "
                f"each trained again with other seeds, by the mean of its trainings: trial "
                f"{self.record.number}'s network, {fmt(self.mean)}{unit} ({pct}).")
        if self.runner_up is not None:
            other, scores = self.runner_up
            text += (f" The runner-up, trial {other.number}'s network, has "
                     f"{fmt(statistics.fmean(scores))}{unit} over {len(scores)}.")
        if self.confidence is not None:
            text += (f" With the seed noise measured on these networks (sd "
                     f"{fmt(self.noise_sd)}{' points' if percent else ''}), the winner is "
                     "truly the better of "
                     f"the two with probability about {self.confidence:.0%}.")
        return text


def _firsts(trials: list[Record]) -> list[Record]:
    """The first scored trial of each network."""
    seen: dict[str, Record] = {}
    for t in trials:
        if t.scored and t.key not in seen:
            seen[t.key or ""] = t
    return list(seen.values())


def _rank(t: Record) -> tuple[float, int]:
    return t.values[0], -(t.madds or 0)


def rescore(study: optuna.Study, space: searchspace.SearchSpace, evaluate: Evaluate,
            plan: Rescore, strategy: str, log: Callable[[str], None] | None = None,
            deadline: float | None = None) -> int:
    """Train the ``plan.top`` best networks ``plan.seeds`` more times each, as trials of
    ``study``; trainings a resumed run already scored are not repeated (failed ones are), and
    none starts after ``deadline`` (a ``time.time()``). Returns how many ran."""
    if plan.trainings == 0:
        return 0
    trials = records(study)
    done = {(t.rescore_of, t.seed) for t in trials
            if t.status == Status.RESCORED and t.state == TrialState.COMPLETE}
    top = sorted(_firsts(trials), key=_rank, reverse=True)[:plan.top]
    todo = [(t, t.seed + j) for t in top for j in range(1, plan.seeds + 1)
            if (t.number, t.seed + j) not in done]
    for i, (t, seed) in enumerate(todo, 1):
        if deadline is not None and time.time() >= deadline:
            if log:
                log(f"final choice: the time is up; {len(todo) - i + 1} training(s) of the "
                    "best again left out")
            return i - 1
        if log:
            log(f"final choice: training {i}/{len(todo)}, trial {t.number}'s network again "
                f"with seed {seed}")
        g = searchspace.Genotype.from_yaml(t.genotype)
        try:
            r = evaluate(g, seed, dict(t.decisions))
        except Exception as exc:  # noqa: BLE001 - a fault fails this training only
            r = Evaluation(Outcome.FAILED, t.madds or 0, t.params or 0, reason=f"error: {exc}")
        study.add_trial(_trial(space, t, seed, r, strategy))
    return len(todo)


def _trial(space: searchspace.SearchSpace, first: Record, seed: int, r: Evaluation,
           strategy: str) -> optuna.trial.FrozenTrial:
    attrs = fields_of(status=Status.RESCORED, rescore_of=first.number, seed=seed,
                      key=first.key, genotype=first.genotype, madds=first.madds,
                      params=first.params, **{k: getattr(r, k) for k in (
                          "accuracy", "worth", "seconds", "images_per_s", "epochs", "device",
                          "reason", "split") if getattr(r, k) not in (None, "")})
    ok = r.status == Outcome.OK
    second = first.latency_ms if first.latency_ms is not None else first.madds
    values = ([r.accuracy, second] if strategy in MULTI_OBJECTIVE else [r.accuracy]) \
        if ok else None
    return create_trial(state=TrialState.COMPLETE if ok else TrialState.FAIL, values=values,
                        params=dict(first.decisions), distributions=distributions(space),
                        user_attrs=attrs)


def choose(trials: list[Record]) -> Choice | None:
    """The winner: among the networks of best single scores down to the last one trained
    again (the rescored ones, and any whose rescoring failed or was cut short), the highest
    mean of its trainings (ties: fewer multiply-adds); without rescoring, the highest single
    score."""
    firsts = _firsts(trials)
    if not firsts:
        return None
    extra: dict[int, list[float]] = {}
    for t in trials:
        if t.status == Status.RESCORED and t.state == TrialState.COMPLETE:
            extra.setdefault(t.rescore_of, []).append(t.values[0])
    scores = {t.number: (t.values[0], *extra.get(t.number, ())) for t in firsts}
    rescored = {t.rescore_of for t in trials if t.status == Status.RESCORED}
    ranked_firsts = sorted(firsts, key=_rank, reverse=True)
    last = max((i for i, t in enumerate(ranked_firsts) if t.number in rescored), default=None)
    pool = ranked_firsts[:last + 1] if last is not None else firsts
    ranked = sorted(pool, key=lambda t: (statistics.fmean(scores[t.number]), -(t.madds or 0)),
                    reverse=True)
    best = ranked[0]
    runner = (ranked[1], scores[ranked[1].number]) if len(ranked) > 1 and extra else None
    return Choice(best, scores[best.number], runner, _pooled_sd(
        [scores[t.number] for t in pool if len(scores[t.number]) > 1]), len(pool))


def _pooled_sd(groups: list[tuple[float, ...]]) -> float | None:
    dof = sum(len(g) - 1 for g in groups)
    if dof == 0:
        return None
    return math.sqrt(sum((len(g) - 1) * statistics.variance(g) for g in groups) / dof)
