"""Where a study lives: a journal file in the run folder, or a database shared by machines.

A journal (a path) is safe for several processes on one machine; a database URL
(postgresql://, mysql://, sqlite:///file.db) is shared by machines, and its trials send
heartbeats (``HEARTBEAT``) so that a dead machine's trial is found (``nas.recovery``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage

from nas.errors import UserError
from nas.journal import SafeJournalBackend, repair
from nas.strategies import MULTI_OBJECTIVE

__all__ = ["JOURNAL", "HEARTBEAT", "is_database", "check_storage_url", "open_storage",
           "create_study"]

JOURNAL = "study.journal"
# a database study's trials send a heartbeat every HEARTBEAT[0] s; one silent for HEARTBEAT[1] s
# is stale: its worker (on any machine) is taken for dead, and its trial failed and queued again
HEARTBEAT = (60, 180)
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
    if is_database(text):
        return _database(text, heartbeat)
    path = Path(text)
    path.parent.mkdir(parents=True, exist_ok=True)
    if on_repair is not None:
        warning = repair(path)
        if warning:
            on_repair(warning)
    return JournalStorage(SafeJournalBackend(str(path)))


def _database(url: str, heartbeat: tuple[int, int]) -> RDBStorage:
    try:
        return RDBStorage(url, heartbeat_interval=heartbeat[0], grace_period=heartbeat[1])
    except ImportError as exc:
        raise UserError(f"storage {url.split('://')[0]}: a driver is missing ({exc})") \
            from None
    except Exception as exc:  # SQLAlchemy raises many kinds for a bad URL or server
        line = " ".join(str(exc).split())[:200]
        raise UserError(f"cannot open storage {url!r}: {line}") from None


def create_study(storage: BaseStorage, name: str, strategy: str, sampler=None,
                 load_if_exists: bool = True) -> optuna.Study:
    """The study (created, or loaded when it exists): maximise accuracy (nsga2: and min cost)."""
    directions = ["maximize", "minimize"] if strategy in MULTI_OBJECTIVE else ["maximize"]
    return optuna.create_study(storage=storage, study_name=name, sampler=sampler,
                               directions=directions, load_if_exists=load_if_exists)
