"""One worker's search loop over an Optuna study: ask, decode, cost, evaluate, tell.

Each trial stores its decisions (as Optuna params), the fields of a ``nas.trial.Record`` (the
genotype YAML, multiply-adds, parameters, validation accuracy, seconds, its training seed, its
worker, any failure reason) and its budget constraint (``trial.set_constraint``).
Over-budget proposals are told PRUNED with a positive constraint and never trained; a
candidate whose decoding, building or training raises is told FAIL with its reason (the
search goes on); a network whose key() was scored already is not trained again: its stored
result is told (status ``reused``). Trials a dead worker left are queued again by
``nas.recovery``. A worker whose proposals train nothing ``MAX_IDLE`` times in a row stops.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.trial import TrialState

import searchspace
from evaluators.base import Evaluation
from nas import optuna_internals as internals
from nas.recovery import Heartbeat, describe, requeue_stale, worker_id
from nas.storage import create_study
from nas.strategies import MULTI_OBJECTIVE, make
from nas.strategies.base import NOTHING_NEW, SCREENED, Screen, mark_study
from nas.tally import evaluated
from nas.trial import TAKEN, Record, Status, records, status_of, write
from searchspace.latency_measure import MachineError
from searchspace.latency_table import TableError

__all__ = ["Evaluate", "Stop", "run_worker", "MAX_IDLE", "LATE"]

MAX_IDLE = 500  # proposals in a row that train nothing (over budget, already scored)
LATE = "late result of trial {}"  # a study user attribute: see _record

# (genotype, training seed, the decisions) -> Evaluation
Evaluate = Callable[[searchspace.Genotype, int, dict[str, Any]], Evaluation]


@dataclass(frozen=True)
class Stop:
    """When a worker stops: after ``trials`` evaluated trials in the study, or at ``deadline``."""

    trials: int | None = None
    deadline: float | None = None  # time.time() value

    def reached(self, study: optuna.Study) -> bool:
        if self.deadline is not None and time.time() >= self.deadline:
            return True
        return self.trials is not None and sum(
            status_of(t) in TAKEN for t in study.get_trials(deepcopy=False)) >= self.trials


def run_worker(storage: BaseStorage, study_name: str, space: searchspace.SearchSpace,
               strategy: str, seed: int, evaluate: Evaluate, limits: searchspace.Limits,
               stop: Stop, log: Callable[[str], None] | None = None,
               screen: Screen | None = None, worker: str | None = None) -> int:
    """One worker's loop; returns how many candidates it evaluated. With ``screen``, each
    trial's network is the screen's pick of several proposals; ``worker`` names this worker
    in its trials (default: ``worker_id()``)."""
    if not isinstance(limits, searchspace.Limits):  # a dict of the old API fails here, clearly
        raise TypeError(f"limits must be a searchspace.Limits, not {type(limits).__name__}")
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    sampler = make(strategy, space=space, seed=seed, fits=_budget_use(limits), screen=screen,
                   trials=stop.trials)
    study = create_study(storage, study_name, strategy, sampler)
    try:
        return _loop(_Worker(study, space, strategy, seed, evaluate, limits, stop, log,
                             worker or worker_id()))
    finally:
        close = getattr(sampler, "close", None)  # NNI's: its strategy's thread ends
        if close is not None:
            close()


def _budget_use(limits: searchspace.Limits) -> Callable[[searchspace.Genotype], float]:
    """genotype -> the largest cost / limit (<= 1 fits)."""
    return lambda g: limits.use(limits.cost(g))


def _loop(w: _Worker) -> int:
    mark_study(w.study, w.space)
    while True:
        requeue_stale(w.study, w.log)  # before the stop test: a dead machine's claim is void
        if w.stop.reached(w.study):
            break
        if w.idle >= MAX_IDLE:
            w.log(f"stopping: {w.idle} proposals in a row trained nothing (over the budget, "
                  "or scored already): the space has nothing new left under this budget")
            break
        trial = w.study.ask()
        try:
            with Heartbeat(w.study, internals.trial_id(trial)):
                go_on = w.run(trial)
        except UpdateFinishedTrialError:  # a stalled worker's trial, failed as stale meanwhile
            w.log(f"trial {trial.number} was failed as stale by another process meanwhile")
            continue
        if not go_on:
            break
    return w.n


@dataclass
class _Worker:
    """One worker's state in the loop: what it needs to run a trial, and its counts."""

    study: optuna.Study
    space: searchspace.SearchSpace
    strategy: str
    seed: int
    evaluate: Evaluate
    limits: searchspace.Limits
    stop: Stop
    log: Callable[[str], None]
    worker: str
    n: int = 0  # candidates evaluated
    idle: int = 0  # proposals in a row that trained nothing

    def run(self, trial: optuna.Trial) -> bool:
        """Take ``trial`` from its proposal to its end; False when the worker should stop."""
        write(trial, worker=self.worker)
        proposal = self._propose(trial)
        if proposal is None:  # its decisions made no network: the trial failed
            self.n += 1
            return True
        g, c, params = proposal
        exhausted = self._sampler_notes(trial)
        if not self.limits.fits(c):
            write(trial, status=Status.REJECTED)
            return self._untrained(trial, exhausted, "that fits the budget was found")
        prior = _scored(self.study).get(g.key())
        if prior is not None:
            _reuse(self.study, trial, prior)
            return self._untrained(trial, exhausted, "that fits the budget was found (the "
                                   "space is exhausted, or nearly)", reused=True)
        return self._claim(trial, g, c, params)

    def _propose(self, trial: optuna.Trial):
        """(genotype, cost, decisions) of the sampler's proposal, written on the trial with
        its budget constraints; None (the trial failed) when they make no network."""
        try:
            params = {k: trial.suggest_categorical(k, v)
                      for k, v in self.space.decisions.items()}
            g = self.space.genotype(params)
            c = self.limits.cost(g)
        except (TableError, MachineError) as exc:  # the table cannot answer: the search stops
            _fail(self.study, trial, f"error: {exc}")
            raise
        except Exception as exc:  # noqa: BLE001 - a space whose decisions make no network
            _fail(self.study, trial, f"error: decoding the candidate: {describe(exc)}")
            return None
        write(trial, genotype=g.to_yaml(), key=g.key(), madds=c.madds, params=c.params,
              latency_ms=c.latency_ms)
        for name, limit in self.limits.items():
            trial.set_constraint(name, getattr(c, name) / limit - 1.0)
        return g, c, params

    def _sampler_notes(self, trial: optuna.Trial) -> bool:
        """Record how many proposals the screen compared; True when the sampler found
        nothing new that fits (the search ends after this trial)."""
        system = internals.trial_system_attrs(self.study, internals.trial_id(trial))
        if system.get(SCREENED):
            write(trial, screened=system[SCREENED])
        return bool(system.get(NOTHING_NEW))

    def _untrained(self, trial: optuna.Trial, exhausted: bool, what: str,
                   reused: bool = False) -> bool:
        """A rejected (told PRUNED here) or reused trial: one more idle proposal; the end of
        the search when the sampler had nothing new left."""
        if not reused:
            self.study.tell(trial, state=TrialState.PRUNED)
        self.idle += 1
        if exhausted:
            self.log(f"stopping: no {'new ' if reused else ''}network of the {self.space.name} "
                     f"space {what}")
            return False
        return True

    def _claim(self, trial: optuna.Trial, g: searchspace.Genotype, c: searchspace.Cost,
               params: dict[str, Any]) -> bool:
        """Claim a place of --trials and the network, then train it; racing workers decide
        by trial number (see ``_settled_lower``)."""
        # its training seed before its claim: a retry of it, however early its worker dies,
        # trains with the same seed
        write(trial, seed=trial.user_attrs.get("seed", self.seed * 100_003 + trial.number),
              status=Status.TRAINING)
        lower = _settled_lower(self.study, trial.number)
        if any(t.key == g.key() and t.status in TAKEN for t in lower):
            write(trial, status=Status.DUPLICATE)  # another worker took the same network first
            self.study.tell(trial, state=TrialState.PRUNED)
            self.idle += 1
            return True
        if self.stop.trials is not None and _claims(lower) >= self.stop.trials:
            write(trial, status=Status.SURPLUS)
            self.study.tell(trial, state=TrialState.PRUNED)
            return False
        self._train(trial, g, c, params)
        return True

    def _train(self, trial: optuna.Trial, g: searchspace.Genotype, c: searchspace.Cost,
               params: dict[str, Any]) -> None:
        """Train and score the claimed candidate; a fault of any kind fails only this trial."""
        try:
            result = self.evaluate(g, trial.user_attrs["seed"], params)
        except Exception as exc:  # noqa: BLE001
            result = Evaluation(Status.FAILED, c.madds, c.params,
                                reason=f"error: {describe(exc)}")
        _record(self.study, trial, result, self.strategy, self.log)
        self.n += 1
        self.idle = 0


def _scored(study: optuna.Study) -> dict[str, Record]:
    """The first scored (or failed) trial of each key."""
    out: dict[str, Record] = {}
    for t in evaluated(study):
        out.setdefault(t.key or "", t)
    return out


def _reuse(study: optuna.Study, trial: optuna.Trial, prior: Record) -> None:
    """Tell ``trial`` the stored result of the same network (never trained twice)."""
    write(trial, **{name: getattr(prior, name) for name in ("accuracy", "reason", "split",
                                                            "worth")
                    if getattr(prior, name) is not None})
    write(trial, reused_from=prior.number, status=Status.REUSED)
    if prior.state == TrialState.COMPLETE:
        study.tell(trial, list(prior.values))
    else:
        study.tell(trial, state=TrialState.FAIL)


def _settled_lower(study: optuna.Study, number: int) -> list[Record]:
    """The trials numbered below ``number``, once each has said whether it trains.

    A trial waits (milliseconds) until every lower-numbered trial has a status, so racing
    workers decide by trial number, not by who checks first: two cannot both take the last
    place of --trials, nor both train the same network.
    """
    deadline = time.time() + 30  # a worker that died between ask and its status
    while True:
        lower = [t for t in records(study) if t.number < number]
        recent = datetime.now() - timedelta(seconds=30)  # older ones: their worker died
        pending = [t for t in lower if t.state == TrialState.RUNNING and t.status is None
                   and t.started is not None and t.started > recent]
        if not pending or time.time() > deadline:
            return lower
        time.sleep(0.05)


def _fail(study: optuna.Study, trial: optuna.Trial, reason: str) -> None:
    write(trial, reason=reason, status=Status.FAILED)
    study.tell(trial, state=TrialState.FAIL)


def _claims(trials: list[Record]) -> int:
    return sum(t.status in TAKEN for t in trials)


def _record(study: optuna.Study, trial: optuna.Trial, r: Evaluation, strategy: str,
            log: Callable[[str], None]) -> None:
    """Tell ``r``. A trial failed meanwhile as stale (its heartbeats were late: a stalled
    machine, not a dead one) keeps the late result in the study, not in the failed trial."""
    try:
        _tell(study, trial, r, strategy)
    except (UpdateFinishedTrialError, ValueError):  # ValueError: "Cannot tell a FAIL trial"
        if internals.trial_state(study, internals.trial_id(trial)) == TrialState.RUNNING:
            raise
        study.set_user_attr(LATE.format(trial.number), r.to_dict())
        log(f"trial {trial.number} was failed as stale by another process meanwhile and "
            "queued again; its late result is kept in the study's user attributes")


def _second(attrs: dict[str, Any], madds: int) -> float:
    """NSGA-II's second objective: the predicted latency under a latency budget, else the
    multiply-adds."""
    latency = attrs.get("latency_ms")
    return latency if latency is not None else madds


def _tell(study: optuna.Study, trial: optuna.Trial, r: Evaluation, strategy: str) -> None:
    write(trial, **{key: getattr(r, key) for key in ("accuracy", "seconds", "images_per_s",
                                                      "epochs", "device", "reason", "split",
                                                      "worth")
                    if getattr(r, key) not in (None, "")})
    write(trial, status=Status.OK if r.status == Status.OK else Status.FAILED)
    if r.status != Status.OK:
        study.tell(trial, state=TrialState.FAIL)
        return
    values = [r.accuracy, _second(trial.user_attrs, r.madds)] if strategy in MULTI_OBJECTIVE \
        else [r.accuracy]
    study.tell(trial, values)
