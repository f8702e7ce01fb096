"""The one room where this project touches Optuna's private API: what no public API does.

Optuna's public API has no way to read or write one trial's attributes by its storage id (a
trial another process runs), to fail such a trial, to read system attributes without fetching
every trial, to send a heartbeat from a loop that asks and tells instead of calling
``study.optimize``, or to find the database trials that never sent one. Optuna's own samplers
reach ``study._storage`` for the same reasons. Everything of that kind is here, and
``tests/test_optuna_internals.py`` runs each function against every storage kind we use, so
an Optuna release that changes one fails that test, naming the version, not a search.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

__all__ = ["WRITTEN_FOR", "BaseJournalFileLock", "get_lock_file", "storage_of", "backend_of",
           "study_id", "trial_id", "study_system_attrs", "set_study_system_attr",
           "trial_system_attrs", "set_trial_system_attr", "set_trial_user_attr", "fail_trial",
           "trial_state", "heartbeat_interval", "record_heartbeat", "grace_period",
           "silent_trials"]

WRITTEN_FOR = "5.0.0 to 5.1.0"  # the Optuna releases this module was checked against

try:  # the journal file's lock (nas.journal's flock lock subclasses it)
    from optuna.storages.journal._file import BaseJournalFileLock, get_lock_file
except ImportError as exc:  # pragma: no cover - an Optuna that moved it
    raise ImportError(f"nas/optuna_internals.py was written for Optuna {WRITTEN_FOR}; "
                      f"Optuna {optuna.__version__} moved its journal lock ({exc})") from None


def storage_of(study: optuna.Study) -> BaseStorage:
    """The study's storage (Optuna's cache around a database storage included)."""
    return study._storage


def study_id(study: optuna.Study) -> int:
    """A study's id in its storage."""
    return study._study_id


def trial_id(trial: optuna.Trial | FrozenTrial) -> int:
    """A trial's id in its storage (numbers are per study, ids per storage)."""
    return trial._trial_id


def study_system_attrs(study: optuna.Study) -> dict[str, Any]:
    return study._storage.get_study_system_attrs(study._study_id)


def set_study_system_attr(study: optuna.Study, key: str, value: Any) -> None:
    study._storage.set_study_system_attr(study._study_id, key, value)


def trial_system_attrs(study: optuna.Study, trial_id: int) -> dict[str, Any]:
    """One trial's system attributes, without fetching the study's other trials."""
    return study._storage.get_trial_system_attrs(trial_id)


def set_trial_system_attr(study: optuna.Study, trial_id: int, key: str, value: Any) -> None:
    study._storage.set_trial_system_attr(trial_id, key, value)


def set_trial_user_attr(study: optuna.Study, trial_id: int, key: str, value: Any) -> None:
    """A user attribute of a trial that may be running in another process."""
    study._storage.set_trial_user_attr(trial_id, key, value)


def fail_trial(study: optuna.Study, trial_id: int) -> None:
    """End a RUNNING trial as FAIL; UpdateFinishedTrialError when it has ended meanwhile."""
    study._storage.set_trial_state_values(trial_id, TrialState.FAIL)


def trial_state(study: optuna.Study, trial_id: int) -> TrialState:
    return study._storage.get_trial(trial_id).state


def heartbeat_interval(study: optuna.Study) -> int | None:
    """Seconds between heartbeats: set for a database storage, None for a journal."""
    getter = getattr(study._storage, "get_heartbeat_interval", None)
    return getter() if getter is not None else None


def record_heartbeat(storage: BaseStorage, trial_id: int) -> None:
    storage.record_heartbeat(trial_id)


def backend_of(study: optuna.Study) -> BaseStorage:
    """The storage itself, under the cache Optuna wraps a database storage in (a new wrapper
    each time a study is opened: key per-storage state by this)."""
    return getattr(study._storage, "_backend", study._storage)  # under Optuna's cache


def grace_period(study: optuna.Study) -> float:
    """Seconds of silence after which a database trial is stale (Optuna's default: 2 beats)."""
    storage = backend_of(study)
    return storage.grace_period or 2 * storage.heartbeat_interval


def silent_trials(study: optuna.Study, grace: float) -> tuple[set[int], set[int]]:
    """The ids of a database study's RUNNING trials whose last heartbeat is older than
    ``grace`` seconds by the database's clock, and of those with no heartbeat at all (one
    query; as Optuna's own _get_stale_trial_ids, which skips the second kind)."""
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session
    from sqlalchemy import func
    from sqlalchemy.orm import selectinload

    storage = backend_of(study)
    with _create_scoped_session(storage.scoped_session) as session:
        now = session.execute(func.now()).scalar().replace(tzinfo=None)  # as Optuna does
        running = (session.query(models.TrialModel)
                   .options(selectinload(models.TrialModel.heartbeats))
                   .filter(models.TrialModel.study_id == study._study_id,
                           models.TrialModel.state == TrialState.RUNNING)
                   .all())
        stale = {t.trial_id for t in running if t.heartbeats
                 and now - t.heartbeats[0].heartbeat > timedelta(seconds=grace)}
        silent = {t.trial_id for t in running if not t.heartbeats}
    return stale, silent
