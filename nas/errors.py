"""The error the CLI turns into a single line and a non-zero exit, and the stop by a signal."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

__all__ = ["UserError", "Interrupted", "raise_on_signals", "known_errors"]


class UserError(Exception):
    """Something the user can fix: printed as one line, exit code ``code``."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM: a KeyboardInterrupt (no ``except Exception`` swallows it) that knows
    its signal, so the command exits with 128 + its number after writing what finished."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def name(self) -> str:
        """SIGINT or SIGTERM."""
        return signal.Signals(self.signum).name


@contextlib.contextmanager
def raise_on_signals() -> Iterator[None]:
    """Inside the block, SIGINT and SIGTERM raise Interrupted in the main thread; the previous
    handlers come back after it (a no-op outside the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame) -> None:
        raise Interrupted(signum)

    before = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, previous in before.items():
            signal.signal(signum, previous)


def known_errors() -> tuple[type[BaseException], ...]:
    """Errors whose message is already the one line a user needs."""
    from evaluators.checkpoint import CheckpointError
    from evaluators.data import DataError
    from evaluators.recipe import RecipeError
    from evaluators.train import Diverged
    from searchspace import GenotypeError, SpaceError
    from searchspace.latency_measure import MachineError
    from searchspace.latency_table import TableError

    return (DataError, RecipeError, GenotypeError, SpaceError, Diverged, CheckpointError,
            TableError, MachineError)
