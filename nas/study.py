"""The search loop over an Optuna study: ask, decode, cost, evaluate, tell; storage and workers.

Each trial stores its decisions (as Optuna params), the fields of a ``nas.trial.Record`` (the
genotype YAML, multiply-adds, parameters, validation accuracy, seconds, its training seed, its
worker, any failure reason) and its budget constraint (``trial.set_constraint``).
Over-budget proposals are told PRUNED with a positive constraint and never trained; a
candidate whose decoding, building or training raises is told FAIL with its reason (the
search goes on); a network whose key() was scored already is not trained again: its stored
result is told (status ``reused``). A trial whose worker died is failed and queued again once
with the same decisions and seed (``requeue``); on a database, trials send heartbeats, and a
silent one is taken for dead by any live worker. A worker whose proposals train nothing
``MAX_IDLE`` times in a row stops.
"""

from __future__ import annotations

import os
import secrets
import socket
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.trial import TrialState

import searchspace
from evaluators.proxy import Evaluation
from nas.errors import UserError
from nas.journal import SafeJournalBackend, repair
from nas.rescore import choose
from nas.strategies import MULTI_OBJECTIVE, make
from nas.strategies.base import NOTHING_NEW, SCREENED, Screen, mark_study
from nas.trial import (
    TAKEN,
    TRAINED,
    Record,
    Status,
    fields_of,
    records,
    status_of,
    write,
    write_stored,
)

__all__ = ["open_storage", "create_study", "run_worker", "Stop", "Status", "Record", "counts",
           "evaluated", "best_trial", "requeue_orphans", "requeue", "requeue_stale",
           "requeue_interrupted", "failures", "worker_id", "is_database", "JOURNAL",
           "HEARTBEAT", "LATE"]

JOURNAL = "study.journal"
# a database study's trials send a heartbeat every HEARTBEAT[0] s; one silent for HEARTBEAT[1] s
# is stale: its worker (on any machine) is taken for dead, and its trial failed and queued again
HEARTBEAT = (60, 180)
# Optuna warns that heartbeats belong to study.optimize; this loop asks and tells, and sends
# them itself (_Heartbeat)
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with")
MAX_IDLE = 500  # proposals in a row that train nothing (over budget, already scored)


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


_DATABASES = ("postgresql://", "postgresql+", "mysql://", "mysql+", "sqlite://")


def is_database(url: str | Path) -> bool:
    """Whether ``url`` names a database (shared by machines, with heartbeats), not a journal."""
    return str(url).startswith(_DATABASES)


def check_storage_url(url: str | Path) -> None:
    """UserError in one line for a URL of a kind no storage here speaks, or one that keeps
    nothing (an in-memory SQLite database dies with the process that opened it)."""
    text = str(url)
    if "://" in text and not text.startswith(_DATABASES):
        raise UserError(f"unsupported storage {text!r} (a journal file path, postgresql://, "
                        "mysql:// or sqlite:///path.db)")
    if text.startswith("sqlite") and text.split("://", 1)[1] in ("", "/", "/:memory:"):
        raise UserError(f"storage {text!r} is an in-memory database: every process would see "
                        "its own, and nothing is kept; give a file, e.g. sqlite:///study.db")


def open_storage(url: str | Path, on_repair: Callable[[str], None] | None = None,
                 heartbeat: tuple[int, int] = HEARTBEAT) -> BaseStorage:
    """A journal file (a path: safe for several processes on one machine) or a database URL.

    With ``on_repair``, a journal's damaged tail is cut first (see nas.journal.repair) and
    the warning passed to it: do this once, at the start of a run, before anything is appended.
    """
    text = str(url)
    check_storage_url(text)
    if text.startswith(_DATABASES):
        try:
            return RDBStorage(text, heartbeat_interval=heartbeat[0], grace_period=heartbeat[1])
        except ImportError as exc:
            raise UserError(f"storage {text.split('://')[0]}: a driver is missing ({exc})") \
                from None
        except Exception as exc:  # SQLAlchemy raises many kinds for a bad URL or server
            line = " ".join(str(exc).split())[:200]
            raise UserError(f"cannot open storage {text!r}: {line}") from None
    path = Path(text)
    path.parent.mkdir(parents=True, exist_ok=True)
    if on_repair is not None:
        warning = repair(path)
        if warning:
            on_repair(warning)
    return JournalStorage(SafeJournalBackend(str(path)))


def create_study(storage: BaseStorage, name: str, strategy: str, sampler=None,
                 load_if_exists: bool = True) -> optuna.Study:
    """The study (created, or loaded when it exists): maximise accuracy (nsga2: and min cost)."""
    directions = ["maximize", "minimize"] if strategy in MULTI_OBJECTIVE else ["maximize"]
    return optuna.create_study(storage=storage, study_name=name, sampler=sampler,
                               directions=directions, load_if_exists=load_if_exists)


def claimed(study: optuna.Study) -> list[Record]:
    """Trials that count towards --trials: evaluated, or being evaluated (rejected do not)."""
    return [t for t in records(study) if t.status in TAKEN]


def evaluated(study: optuna.Study) -> list[Record]:
    """Trials whose candidate was trained (scored or failed)."""
    return [t for t in records(study) if t.status in TRAINED]


_COUNTED = {Status.OK: "complete", Status.REJECTED: "rejected", Status.FAILED: "failed",
            Status.REUSED: "reused", Status.ORPHANED: "retried", Status.INTERRUPTED: "retried",
            Status.RESCORED: "rescored"}


def counts(study: optuna.Study) -> dict[str, int]:
    """How many trials are complete, rejected, reused, failed, retried (queued again after
    their worker died or a signal stopped them), rescored (trained again for the final
    choice) and running."""
    out = {"complete": 0, "rejected": 0, "reused": 0, "failed": 0, "retried": 0,
           "rescored": 0, "running": 0}
    for t in records(study):
        key = _COUNTED.get(t.status)
        if key:
            out[key] += 1
        elif t.state == TrialState.RUNNING:
            out["running"] += 1
    return out


def best_trial(study: optuna.Study) -> Record | None:
    """The first trial of the winning network: the highest validation accuracy (ties: fewer
    multiply-adds), or, where the best were trained again, the highest mean of them
    (``nas.rescore.choose``)."""
    choice = choose(records(study, (TrialState.COMPLETE,)))
    return None if choice is None else choice.record


_TOKEN = secrets.token_hex(4)  # this process's: host and pid may repeat across containers


def worker_id(pid: int | None = None, token: str | None = None) -> str:
    """A process as the ``worker`` attribute of the trials it runs: host:pid:token. By
    default this process; a parent names its child by the child's pid and the token it gave
    it (see nas.search._Supervisor)."""
    return f"{socket.gethostname()}:{pid or os.getpid()}:{token or _TOKEN}"


def requeue(study: optuna.Study, trial: Record, status: Status, reason: str,
            counts_as_retry: bool = True) -> bool:
    """End a RUNNING ``trial`` as failed with ``reason`` and queue its decisions again, with
    the same training seed. A trial whose worker died is tried again once (``counts_as_retry``);
    the second death leaves it FAILED. An interrupted one (a signal, not the network's fault)
    is always queued again. Returns whether it was queued; False also when the trial ended
    meanwhile (its worker told a late result, which is kept)."""
    retries = trial.retries or 0
    again = not counts_as_retry or retries < 1
    try:
        write_stored(study, trial.trial_id, status=status if again else Status.FAILED,
                     reason=reason if again else f"{reason} (a second time: not tried again)")
        study._storage.set_trial_state_values(trial.trial_id, TrialState.FAIL)
    except UpdateFinishedTrialError:
        return False
    if again:
        attrs = fields_of(retries=retries + int(counts_as_retry), retry_of=trial.number)
        if trial.seed is not None:
            attrs |= fields_of(seed=trial.seed)
        study.enqueue_trial(trial.decisions, user_attrs=attrs, skip_if_exists=False)
    return again


def requeue_orphans(study: optuna.Study, worker: str | None = None,
                    reason: str = "worker died: it stopped before the trial finished",
                    status: Status = Status.ORPHANED, counts_as_retry: bool = True) -> int:
    """Trials left RUNNING (by ``worker`` only, when given): failed with ``reason`` and queued
    again (see ``requeue``). Returns how many were queued."""
    n = 0
    for t in records(study, (TrialState.RUNNING,)):
        if worker is None or t.worker == worker:
            n += requeue(study, t, status, reason, counts_as_retry)
    return n


def requeue_interrupted(study: optuna.Study, worker: str, why: str) -> int:
    """``worker``'s RUNNING trials, stopped by ``why`` (a signal): queued again for the
    resume, not counted as a retry (the network is not at fault)."""
    return requeue_orphans(study, worker=worker, reason=f"interrupted: {why}",
                           status=Status.INTERRUPTED, counts_as_retry=False)


def _heartbeat_interval(study: optuna.Study) -> int | None:
    getter = getattr(study._storage, "get_heartbeat_interval", None)
    return getter() if getter is not None else None


# storage -> {trial id: when (time.monotonic) this process first saw it RUNNING with no
# heartbeat}. A clock of our own: the only time such a trial has, datetime_start, is the
# asking machine's local time, and machines' clocks and time zones may differ from ours
_SILENT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def requeue_stale(study: optuna.Study, log: Callable[[str], None] | None = None) -> int:
    """A database study's trials whose worker stopped sending heartbeats (died, on whatever
    machine): failed and queued again once. So is one that never sent a heartbeat (its worker
    died between asking for it and its first beat, or it ran under a version that sent none)
    once this process has seen it silent for the grace period. Live trials are left alone.
    Returns how many were queued, and says so to ``log``."""
    if not _heartbeat_interval(study):
        return 0
    storage = getattr(study._storage, "_backend", study._storage)  # under Optuna's cache
    grace = storage.grace_period or 2 * storage.heartbeat_interval
    stale, silent = _heartbeats(storage, study._study_id, grace)
    seen = _SILENT.setdefault(storage, {})
    for trial_id in set(seen) - silent:
        del seen[trial_id]
    now = time.monotonic()
    never = {i for i in silent if now - seen.setdefault(i, now) > grace}
    n = 0
    for t in records(study, (TrialState.RUNNING,)):
        if t.trial_id in stale | never:
            n += requeue(study, t, Status.ORPHANED, "worker died: " + (
                "its heartbeats stopped" if t.trial_id in stale else "it sent no heartbeat"))
    if n and log is not None:
        log(f"{n} trial(s) of workers that stopped sending heartbeats queued again")
    return n


def _heartbeats(storage: RDBStorage, study_id: int, grace: float) -> tuple[set[int], set[int]]:
    """The ids of the study's RUNNING trials whose last heartbeat is older than ``grace``
    seconds by the database's clock, and of those with no heartbeat at all (one query; as
    Optuna's own _get_stale_trial_ids, which skips the second kind)."""
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session
    from sqlalchemy import func
    from sqlalchemy.orm import selectinload

    with _create_scoped_session(storage.scoped_session) as session:
        now = session.execute(func.now()).scalar().replace(tzinfo=None)  # as Optuna does
        running = (session.query(models.TrialModel)
                   .options(selectinload(models.TrialModel.heartbeats))
                   .filter(models.TrialModel.study_id == study_id,
                           models.TrialModel.state == TrialState.RUNNING)
                   .all())
        stale = {t.trial_id for t in running if t.heartbeats
                 and now - t.heartbeats[0].heartbeat > timedelta(seconds=grace)}
        silent = {t.trial_id for t in running if not t.heartbeats}
    return stale, silent


class _Heartbeat:
    """While a trial runs, a thread records its heartbeat in a database storage (Optuna does
    this only inside study.optimize; this loop asks and tells)."""

    def __init__(self, study: optuna.Study, trial_id: int) -> None:
        self.interval = _heartbeat_interval(study)
        self.storage, self.trial_id = study._storage, trial_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def __enter__(self) -> _Heartbeat:
        if self.interval:
            self.storage.record_heartbeat(self.trial_id)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.interval)  # a beat stuck in a dead connection

    def _beat(self) -> None:
        warned = False
        while not self._stop.wait(self.interval):
            try:
                self.storage.record_heartbeat(self.trial_id)
            except Exception as exc:  # noqa: BLE001 - a lost beat; the next may get through
                if not warned:
                    print(f"warning: a heartbeat of trial id {self.trial_id} was lost "
                          f"({_describe(exc)}); past the grace period it is taken for dead",
                          file=sys.stderr, flush=True)
                    warned = True


def failures(study: optuna.Study) -> dict[str, int]:
    """Failed trials, and those whose worker died, by the kind of their reason (its first
    words, before a colon): {"diverged": 2, "worker died": 1, ...}. A trial stopped by a
    signal is not a failure: it is queued for the resume. A training of the final choice
    that failed counts too."""
    out: dict[str, int] = {}
    for t in records(study):
        if t.status in (Status.FAILED, Status.ORPHANED) or (
                t.status == Status.RESCORED and t.state == TrialState.FAIL):
            kind = str(t.reason or "unknown").split(":")[0].strip() or "unknown"
            out[kind] = out.get(kind, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def _budget_use(limits: searchspace.Limits) -> Callable[[searchspace.Genotype], float]:
    """genotype -> the largest cost / limit (<= 1 fits)."""
    return lambda g: limits.use(searchspace.cost(g))


def _scored(study: optuna.Study) -> dict[str, Record]:
    """The first scored (or failed) trial of each key."""
    out: dict[str, Record] = {}
    for t in evaluated(study):
        out.setdefault(t.key or "", t)
    return out


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
    try:
        return _loop(create_study(storage, study_name, strategy, sampler), space, strategy,
                     seed, evaluate, limits, stop, log, worker or worker_id())
    finally:
        if hasattr(sampler, "close"):  # NNI's: its strategy's thread ends
            sampler.close()


def _loop(study: optuna.Study, space: searchspace.SearchSpace, strategy: str, seed: int,
          evaluate: Evaluate, limits: searchspace.Limits, stop: Stop,
          log: Callable[[str], None], worker: str) -> int:
    mark_study(study, space)
    w = _Worker(study, space, strategy, seed, evaluate, limits, stop, log, worker)
    while True:
        requeue_stale(study, log)  # before the stop test: a dead machine's claim is void
        if stop.reached(study):
            break
        if w.idle >= MAX_IDLE:
            log(f"stopping: {w.idle} proposals in a row trained nothing (over the budget, or "
                "scored already): the space has nothing new left under this budget")
            break
        trial = study.ask()
        try:
            with _Heartbeat(study, trial._trial_id):
                go_on = w.run(trial)
        except UpdateFinishedTrialError:  # a stalled worker's trial, failed as stale meanwhile
            log(f"trial {trial.number} was failed as stale by another process meanwhile")
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
        try:
            params = {k: trial.suggest_categorical(k, v)
                      for k, v in self.space.decisions.items()}
            g = self.space.genotype(params)
            c = searchspace.cost(g)
        except Exception as exc:  # noqa: BLE001 - a space whose decisions make no network
            _fail(self.study, trial, f"error: decoding the candidate: {_describe(exc)}")
            self.n += 1
            return True
        key = g.key()
        write(trial, genotype=g.to_yaml(), key=key, madds=c.madds, params=c.params)
        for name, limit in self.limits.items():
            trial.set_constraint(name, getattr(c, name) / limit - 1.0)
        system = self.study._storage.get_trial_system_attrs(trial._trial_id)
        exhausted = system.get(NOTHING_NEW)
        if system.get(SCREENED):
            write(trial, screened=system[SCREENED])
        if not self.limits.fits(c):
            write(trial, status=Status.REJECTED)
            self.study.tell(trial, state=TrialState.PRUNED)
            self.idle += 1
            if exhausted:
                self.log(f"stopping: no network of the {self.space.name} space that fits the "
                         "budget was found")
                return False
            return True
        prior = _scored(self.study).get(key)
        if prior is not None:
            _reuse(self.study, trial, prior)
            self.idle += 1
            if exhausted:
                self.log(f"stopping: no new network of the {self.space.name} space that fits "
                         "the budget was found (the space is exhausted, or nearly)")
                return False
            return True
        # its training seed before its claim: a retry of it, however early its worker dies,
        # trains with the same seed
        write(trial, seed=trial.user_attrs.get("seed", self.seed * 100_003 + trial.number),
              status=Status.TRAINING)
        lower = _settled_lower(self.study, trial.number)
        if any(t.key == key and t.status in TAKEN for t in lower):
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
            result = Evaluation("failed", c.madds, c.params, reason=f"error: {_describe(exc)}")
        _record(self.study, trial, result, self.strategy, self.log)
        self.n += 1
        self.idle = 0


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


def _describe(exc: BaseException) -> str:
    """An exception as one line: its type and the first line of its message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


def _fail(study: optuna.Study, trial: optuna.Trial, reason: str) -> None:
    write(trial, reason=reason, status=Status.FAILED)
    study.tell(trial, state=TrialState.FAIL)


def _claims(trials: list[Record]) -> int:
    return sum(t.status in TAKEN for t in trials)


LATE = "late result of trial {}"  # a study user attribute: see _record


def _record(study: optuna.Study, trial: optuna.Trial, r: Evaluation, strategy: str,
            log: Callable[[str], None]) -> None:
    """Tell ``r``. A trial failed meanwhile as stale (its heartbeats were late: a stalled
    machine, not a dead one) keeps the late result in the study, not in the failed trial."""
    try:
        _tell(study, trial, r, strategy)
    except (UpdateFinishedTrialError, ValueError):  # ValueError: "Cannot tell a FAIL trial"
        if study._storage.get_trial(trial._trial_id).state == TrialState.RUNNING:
            raise
        study.set_user_attr(LATE.format(trial.number), r.to_dict())
        log(f"trial {trial.number} was failed as stale by another process meanwhile and "
            "queued again; its late result is kept in the study's user attributes")


def _tell(study: optuna.Study, trial: optuna.Trial, r: Evaluation, strategy: str) -> None:
    write(trial, **{key: getattr(r, key) for key in ("accuracy", "seconds", "images_per_s",
                                                      "epochs", "device", "reason", "split",
                                                      "worth")
                    if getattr(r, key) not in (None, "")})
    write(trial, status=Status.OK if r.status == "ok" else Status.FAILED)
    if r.status != "ok":
        study.tell(trial, state=TrialState.FAIL)
        return
    values = [r.accuracy, r.madds] if strategy in MULTI_OBJECTIVE else [r.accuracy]
    study.tell(trial, values)
