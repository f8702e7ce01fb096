"""Nothing lost when a worker dies: trials queued again once, heartbeats, who ran a trial.

A trial whose worker died is failed with the reason and queued again once, with the same
decisions and training seed (``requeue``); one stopped by a signal is always queued again
(``requeue_interrupted``). On a database, a thread sends each running trial's heartbeat
(``Heartbeat``), and any live worker takes a silent trial for dead (``requeue_stale``).
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

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from nas import optuna_internals as internals
from nas.trial import Record, Status, fields_of, records, write_stored

__all__ = ["worker_id", "requeue", "requeue_orphans", "requeue_interrupted", "requeue_stale",
           "Heartbeat", "describe"]

# Optuna warns that heartbeats belong to study.optimize; the loop asks and tells, and sends
# them itself (Heartbeat)
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with")
_TOKEN = secrets.token_hex(4)  # this process's: host and pid may repeat across containers


def worker_id(pid: int | None = None, token: str | None = None) -> str:
    """A process as the ``worker`` attribute of the trials it runs: host:pid:token. By
    default this process; a parent names its child by the child's pid and the token it gave
    it (see nas.supervisor.Supervisor)."""
    return f"{socket.gethostname()}:{pid or os.getpid()}:{token or _TOKEN}"


def describe(exc: BaseException) -> str:
    """An exception as one line: its type and the first line of its message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


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
        internals.fail_trial(study, trial.trial_id)
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
    if not internals.heartbeat_interval(study):
        return 0
    grace = internals.grace_period(study)
    stale, silent = internals.silent_trials(study, grace)
    seen = _SILENT.setdefault(internals.backend_of(study), {})
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


class Heartbeat:
    """While a trial runs, a thread records its heartbeat in a database storage (Optuna does
    this only inside study.optimize; the loop asks and tells)."""

    def __init__(self, study: optuna.Study, trial_id: int) -> None:
        self.interval = internals.heartbeat_interval(study)
        self.storage, self.trial_id = internals.storage_of(study), trial_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def __enter__(self) -> Heartbeat:
        if self.interval:
            internals.record_heartbeat(self.storage, self.trial_id)
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
                internals.record_heartbeat(self.storage, self.trial_id)
            except Exception as exc:  # noqa: BLE001 - a lost beat; the next may get through
                if not warned:
                    print(f"warning: a heartbeat of trial id {self.trial_id} was lost "
                          f"({describe(exc)}); past the grace period it is taken for dead",
                          file=sys.stderr, flush=True)
                    warned = True
