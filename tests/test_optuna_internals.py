"""Every use of Optuna's private API (``nas/optuna_internals.py``), run against each storage
kind we use: memory, the journal file, a database (SQLite here; PostgreSQL in
test_postgres_storage.py). An Optuna release that changes one fails here, naming itself."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import InMemoryStorage, RDBStorage
from optuna.trial import TrialState

from nas import optuna_internals as internals
from nas.storage import open_storage

WHICH = f"nas/optuna_internals.py was written for Optuna {internals.WRITTEN_FOR}; this is " \
        f"Optuna {optuna.__version__}: "


@pytest.fixture(params=["memory", "journal", "sqlite"])
def study(request, tmp_path: Path) -> optuna.Study:
    storage = {"memory": lambda: InMemoryStorage(),
               "journal": lambda: open_storage(tmp_path / "study.journal"),
               "sqlite": lambda: RDBStorage(f"sqlite:///{tmp_path / 'study.db'}",
                                            heartbeat_interval=60, grace_period=180),
               }[request.param]()
    return optuna.create_study(storage=storage, study_name="s")


def test_attributes_by_id(study: optuna.Study) -> None:
    trial = study.ask()
    tid = internals.trial_id(trial)
    try:
        internals.set_study_system_attr(study, "nas:space", "nb201")
        internals.set_trial_system_attr(study, tid, "k", 3)
        internals.set_trial_user_attr(study, tid, "status", "training")
        assert internals.study_system_attrs(study)["nas:space"] == "nb201"
        assert internals.trial_system_attrs(study, tid)["k"] == 3
        frozen = study.get_trials()[0]
        assert internals.trial_id(frozen) == tid and frozen.user_attrs["status"] == "training"
        assert internals.study_id(study) == internals.study_id(
            optuna.load_study(study_name="s", storage=internals.storage_of(study)))
    except (AttributeError, TypeError, KeyError) as exc:
        pytest.fail(WHICH + f"{type(exc).__name__}: {exc}")


def test_a_trial_is_failed_once(study: optuna.Study) -> None:
    trial = study.ask()
    tid = internals.trial_id(trial)
    try:
        assert internals.trial_state(study, tid) == TrialState.RUNNING
        internals.fail_trial(study, tid)
        assert internals.trial_state(study, tid) == TrialState.FAIL
    except (AttributeError, TypeError) as exc:
        pytest.fail(WHICH + f"{type(exc).__name__}: {exc}")
    with pytest.raises(UpdateFinishedTrialError):
        internals.fail_trial(study, tid)


def test_heartbeats_only_in_a_database(study: optuna.Study) -> None:
    database = isinstance(internals.backend_of(study), RDBStorage)
    try:
        interval = internals.heartbeat_interval(study)
        assert (interval == 60) if database else not interval
        if not database:
            return
        assert internals.grace_period(study) == 180
        beating, silent = study.ask(), study.ask()
        internals.record_heartbeat(internals.storage_of(study), internals.trial_id(beating))
        stale, never = internals.silent_trials(study, grace=180)
        assert stale == set() and never == {internals.trial_id(silent)}
        stale, _ = internals.silent_trials(study, grace=-1)  # every beat is old
        assert stale == {internals.trial_id(beating)}
    except (AttributeError, TypeError, ImportError) as exc:
        pytest.fail(WHICH + f"{type(exc).__name__}: {exc}")


def test_the_journal_lock_base_class_is_where_it_was() -> None:
    try:
        assert issubclass(internals.BaseJournalFileLock, object)
        assert callable(internals.get_lock_file)
    except AttributeError as exc:  # pragma: no cover - an Optuna that moved it
        pytest.fail(WHICH + str(exc))
