"""The search loop over an Optuna study: ask, decode, cost, evaluate, tell; storage and workers.

Each trial stores its decisions (as Optuna params), the genotype YAML, multiply-adds,
parameters, validation accuracy, seconds and any failure reason (as user attributes), and
its budget constraint (``trial.set_constraint``). Over-budget proposals are told PRUNED with a
positive constraint and never trained; failed candidates are told FAIL with their reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
from optuna.trial import FrozenTrial, TrialState

import searchspace
from evaluators.proxy import Evaluation
from nas.errors import UserError
from nas.strategies import MULTI_OBJECTIVE, make

__all__ = ["open_storage", "create_study", "run_worker", "Stop", "counts", "evaluated",
           "best_trial", "requeue_orphans", "JOURNAL"]

JOURNAL = "study.journal"
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
        return self.trials is not None and len(claimed(study)) >= self.trials


def open_storage(url: str | Path) -> BaseStorage:
    """A journal file (a path: safe for several processes on one machine) or a database URL."""
    text = str(url)
    if text.startswith(("postgresql://", "postgresql+", "mysql://", "mysql+", "sqlite://")):
        try:
            return RDBStorage(text, heartbeat_interval=60, grace_period=180)
        except ImportError as exc:
            raise UserError(f"storage {text.split('://')[0]}: a driver is missing ({exc})") \
                from None
        except Exception as exc:  # SQLAlchemy raises many kinds for a bad URL or server
            line = " ".join(str(exc).split())[:200]
            raise UserError(f"cannot open storage {text!r}: {line}") from None
    if "://" in text:
        raise UserError(f"unsupported storage {text!r} (a journal file path, postgresql://, "
                        "mysql:// or sqlite://)")
    path = Path(text)
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path))))


def create_study(storage: BaseStorage, name: str, strategy: str, sampler=None,
                 load_if_exists: bool = True) -> optuna.Study:
    """The study (created, or loaded when it exists): maximise accuracy (nsga2: and min cost)."""
    directions = ["maximize", "minimize"] if strategy in MULTI_OBJECTIVE else ["maximize"]
    return optuna.create_study(storage=storage, study_name=name, sampler=sampler,
                               directions=directions, load_if_exists=load_if_exists)


def claimed(study: optuna.Study) -> list[FrozenTrial]:
    """Trials that count towards --trials: evaluated, or being evaluated (rejected do not)."""
    return [t for t in study.get_trials(deepcopy=False)
            if t.user_attrs.get("status") in ("training", "ok", "failed")]


def evaluated(study: optuna.Study) -> list[FrozenTrial]:
    """Trials whose candidate was trained (scored or failed)."""
    return [t for t in study.get_trials(deepcopy=False)
            if t.user_attrs.get("status") in ("ok", "failed")]


def counts(study: optuna.Study) -> dict[str, int]:
    """How many trials are complete, rejected, failed and running."""
    out = {"complete": 0, "rejected": 0, "failed": 0, "running": 0}
    for t in study.get_trials(deepcopy=False):
        status = t.user_attrs.get("status", "")
        key = {"ok": "complete", "rejected": "rejected", "failed": "failed"}.get(status)
        if key:
            out[key] += 1
        elif t.state == TrialState.RUNNING:
            out["running"] += 1
    return out


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The scored trial with the highest validation accuracy (ties: fewer multiply-adds)."""
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.user_attrs.get("status") == "ok"]
    if not done:
        return None
    return max(done, key=lambda t: (t.values[0], -t.user_attrs.get("madds", 0)))


def requeue_orphans(study: optuna.Study) -> int:
    """Trials left RUNNING by a dead worker: marked FAIL and their decisions queued again."""
    n = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study._storage.set_trial_user_attr(t._trial_id, "status", "orphaned")
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        study.enqueue_trial(t.params, skip_if_exists=False)
        n += 1
    return n


def _fits(space: searchspace.SearchSpace, limits: Mapping[str, float]
          ) -> Callable[[dict[str, Any]], bool]:
    from evaluators.proxy import over_budget

    def feasible(assignment: dict[str, Any]) -> bool:
        return not over_budget(searchspace.cost(space.genotype(assignment)), limits)
    return feasible


def run_worker(storage: BaseStorage, study_name: str, space: searchspace.SearchSpace,
               strategy: str, seed: int, evaluate: Evaluate, limits: Mapping[str, float],
               stop: Stop, on_trial: Callable[[FrozenTrial], None] | None = None) -> int:
    """One worker's loop; returns how many candidates it evaluated."""
    sampler = make(strategy, space=space, seed=seed, feasible=_fits(space, limits))
    study = create_study(storage, study_name, strategy, sampler)
    n = 0
    while not stop.reached(study):
        trial = study.ask()
        params = {k: trial.suggest_categorical(k, v) for k, v in space.decisions.items()}
        g = space.genotype(params)
        c = searchspace.cost(g)
        for key, value in (("genotype", g.to_yaml()), ("key", g.key()), ("madds", c.madds),
                           ("params", c.params)):
            trial.set_user_attr(key, value)
        for key, limit in limits.items():
            trial.set_constraint(key, getattr(c, key) / limit - 1.0)
        if any(getattr(c, k) > v for k, v in limits.items()):
            trial.set_user_attr("status", "rejected")
            study.tell(trial, state=TrialState.PRUNED)
            continue
        trial.set_user_attr("status", "training")
        if stop.trials is not None and _surplus(study, trial.number, stop.trials):
            trial.set_user_attr("status", "surplus")
            study.tell(trial, state=TrialState.PRUNED)
            break
        result = evaluate(g, seed * 100_003 + trial.number, params)
        _record(study, trial, result, strategy)
        n += 1
        if on_trial is not None:
            on_trial(study.get_trials(deepcopy=False)[trial.number])
    return n


def _surplus(study: optuna.Study, number: int, limit: int) -> bool:
    """True when ``limit`` lower-numbered trials already claimed a place.

    Decided by trial number, not by who checks first: a trial waits (milliseconds) until every
    lower-numbered trial has said whether it trains, so two racing workers cannot both take
    the last place.
    """
    deadline = time.time() + 30  # a worker that died between ask and its status
    while True:
        lower = [t for t in study.get_trials(deepcopy=False) if t.number < number]
        pending = [t for t in lower
                   if t.state == TrialState.RUNNING and "status" not in t.user_attrs]
        if not pending or time.time() > deadline:
            break
        time.sleep(0.05)
    claims = sum(t.user_attrs.get("status") in ("training", "ok", "failed") for t in lower)
    return claims >= limit


def _record(study: optuna.Study, trial: optuna.Trial, r: Evaluation, strategy: str) -> None:
    for key in ("accuracy", "seconds", "images_per_s", "epochs", "device", "reason", "split"):
        value = getattr(r, key)
        if value not in (None, ""):
            trial.set_user_attr(key, value)
    trial.set_user_attr("status", "ok" if r.status == "ok" else "failed")
    if r.status != "ok":
        study.tell(trial, state=TrialState.FAIL)
        return
    values = [r.accuracy, r.madds] if strategy in MULTI_OBJECTIVE else [r.accuracy]
    study.tell(trial, values)
