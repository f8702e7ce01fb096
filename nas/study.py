"""The search loop over an Optuna study: ask, decode, cost, evaluate, tell; storage and workers.

Each trial stores its decisions (as Optuna params), the genotype YAML, multiply-adds,
parameters, validation accuracy, seconds and any failure reason (as user attributes), and
its budget constraint (``trial.set_constraint``). Over-budget proposals are told PRUNED with a
positive constraint and never trained; failed candidates are told FAIL with their reason; a
network whose key() was scored already is not trained again: its stored result is told
(status ``reused``). A worker whose proposals train nothing ``MAX_IDLE`` times in a row stops.
"""

from __future__ import annotations

import sys
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
from nas.strategies.base import NOTHING_NEW, SCREENED, Screen, mark_study

__all__ = ["open_storage", "create_study", "run_worker", "Stop", "counts", "evaluated",
           "best_trial", "requeue_orphans", "JOURNAL"]

JOURNAL = "study.journal"
MAX_IDLE = 500  # proposals in a row that train nothing (over budget, already scored)
TAKEN = ("training", "ok", "failed")  # statuses that claim a place and a network
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


_DATABASES = ("postgresql://", "postgresql+", "mysql://", "mysql+", "sqlite://")


def check_storage_url(url: str | Path) -> None:
    """UserError in one line for a URL of a kind no storage here speaks."""
    text = str(url)
    if "://" in text and not text.startswith(_DATABASES):
        raise UserError(f"unsupported storage {text!r} (a journal file path, postgresql://, "
                        "mysql:// or sqlite://)")


def open_storage(url: str | Path) -> BaseStorage:
    """A journal file (a path: safe for several processes on one machine) or a database URL."""
    text = str(url)
    check_storage_url(text)
    if text.startswith(_DATABASES):
        try:
            return RDBStorage(text, heartbeat_interval=60, grace_period=180)
        except ImportError as exc:
            raise UserError(f"storage {text.split('://')[0]}: a driver is missing ({exc})") \
                from None
        except Exception as exc:  # SQLAlchemy raises many kinds for a bad URL or server
            line = " ".join(str(exc).split())[:200]
            raise UserError(f"cannot open storage {text!r}: {line}") from None
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
    return [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("status") in TAKEN]


def evaluated(study: optuna.Study) -> list[FrozenTrial]:
    """Trials whose candidate was trained (scored or failed)."""
    return [t for t in study.get_trials(deepcopy=False)
            if t.user_attrs.get("status") in ("ok", "failed")]


def counts(study: optuna.Study) -> dict[str, int]:
    """How many trials are complete, rejected, reused, failed and running."""
    out = {"complete": 0, "rejected": 0, "reused": 0, "failed": 0, "running": 0}
    for t in study.get_trials(deepcopy=False):
        status = t.user_attrs.get("status", "")
        key = {"ok": "complete", "rejected": "rejected", "failed": "failed",
               "reused": "reused"}.get(status)
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


def _budget_use(limits: Mapping[str, float]) -> Callable[[searchspace.Genotype], float]:
    """genotype -> the largest cost / limit (<= 1 fits)."""
    def use(g: searchspace.Genotype) -> float:
        c = searchspace.cost(g)
        return max((getattr(c, k) / v for k, v in limits.items()), default=0.0)
    return use


def _scored(study: optuna.Study) -> dict[str, FrozenTrial]:
    """The first scored (or failed) trial of each key."""
    out: dict[str, FrozenTrial] = {}
    for t in sorted(evaluated(study), key=lambda t: t.number):
        out.setdefault(t.user_attrs.get("key", ""), t)
    return out


def run_worker(storage: BaseStorage, study_name: str, space: searchspace.SearchSpace,
               strategy: str, seed: int, evaluate: Evaluate, limits: Mapping[str, float],
               stop: Stop, on_trial: Callable[[FrozenTrial], None] | None = None,
               log: Callable[[str], None] | None = None, screen: Screen | None = None) -> int:
    """One worker's loop; returns how many candidates it evaluated. With ``screen``, each
    trial's network is the screen's pick of several proposals."""
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    sampler = make(strategy, space=space, seed=seed, fits=_budget_use(limits), screen=screen,
                   trials=stop.trials)
    try:
        return _loop(create_study(storage, study_name, strategy, sampler), space, strategy,
                     seed, evaluate, limits, stop, on_trial, log)
    finally:
        if hasattr(sampler, "close"):  # NNI's: its strategy's thread ends
            sampler.close()


def _loop(study: optuna.Study, space: searchspace.SearchSpace, strategy: str, seed: int,
          evaluate: Evaluate, limits: Mapping[str, float], stop: Stop,
          on_trial: Callable[[FrozenTrial], None] | None, log: Callable[[str], None]) -> int:
    mark_study(study, space)
    n = idle = 0
    while not stop.reached(study):
        if idle >= MAX_IDLE:
            log(f"stopping: {idle} proposals in a row trained nothing (over the budget, or "
                "scored already): the space has nothing new left under this budget")
            break
        trial = study.ask()
        params = {k: trial.suggest_categorical(k, v) for k, v in space.decisions.items()}
        g = space.genotype(params)
        c = searchspace.cost(g)
        key = g.key()
        for name, value in (("genotype", g.to_yaml()), ("key", key), ("madds", c.madds),
                            ("params", c.params)):
            trial.set_user_attr(name, value)
        for name, limit in limits.items():
            trial.set_constraint(name, getattr(c, name) / limit - 1.0)
        system = study._storage.get_trial_system_attrs(trial._trial_id)
        exhausted = system.get(NOTHING_NEW)
        if system.get(SCREENED):
            trial.set_user_attr("screened", system[SCREENED])
        if any(getattr(c, k) > v for k, v in limits.items()):
            trial.set_user_attr("status", "rejected")
            study.tell(trial, state=TrialState.PRUNED)
            idle += 1
            if exhausted:
                log(f"stopping: no network of the {space.name} space that fits the budget "
                    "was found")
                break
            continue
        prior = _scored(study).get(key)
        if prior is not None:
            _reuse(study, trial, prior)
            idle += 1
            if exhausted:
                log(f"stopping: no new network of the {space.name} space that fits the budget "
                    "was found (the space is exhausted, or nearly)")
                break
            continue
        trial.set_user_attr("status", "training")
        lower = _settled_lower(study, trial.number)
        if any(t.user_attrs.get("key") == key and t.user_attrs.get("status") in TAKEN
               for t in lower):  # another worker took the same network first
            trial.set_user_attr("status", "duplicate")
            study.tell(trial, state=TrialState.PRUNED)
            idle += 1
            continue
        if stop.trials is not None and _claims(lower) >= stop.trials:
            trial.set_user_attr("status", "surplus")
            study.tell(trial, state=TrialState.PRUNED)
            break
        result = evaluate(g, seed * 100_003 + trial.number, params)
        _record(study, trial, result, strategy)
        n += 1
        idle = 0
        if on_trial is not None:
            on_trial(study.get_trials(deepcopy=False)[trial.number])
    return n


def _reuse(study: optuna.Study, trial: optuna.Trial, prior: FrozenTrial) -> None:
    """Tell ``trial`` the stored result of the same network (never trained twice)."""
    for name in ("accuracy", "reason", "split"):
        if name in prior.user_attrs:
            trial.set_user_attr(name, prior.user_attrs[name])
    trial.set_user_attr("reused_from", prior.number)
    trial.set_user_attr("status", "reused")
    if prior.state == TrialState.COMPLETE:
        study.tell(trial, prior.values)
    else:
        study.tell(trial, state=TrialState.FAIL)


def _settled_lower(study: optuna.Study, number: int) -> list[FrozenTrial]:
    """The trials numbered below ``number``, once each has said whether it trains.

    A trial waits (milliseconds) until every lower-numbered trial has a status, so racing
    workers decide by trial number, not by who checks first: two cannot both take the last
    place of --trials, nor both train the same network.
    """
    deadline = time.time() + 30  # a worker that died between ask and its status
    while True:
        lower = [t for t in study.get_trials(deepcopy=False) if t.number < number]
        pending = [t for t in lower
                   if t.state == TrialState.RUNNING and "status" not in t.user_attrs]
        if not pending or time.time() > deadline:
            return lower
        time.sleep(0.05)


def _claims(trials: list[FrozenTrial]) -> int:
    return sum(t.user_attrs.get("status") in TAKEN for t in trials)


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
