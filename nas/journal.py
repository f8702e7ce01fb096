"""The study journal file: a damaged tail cut at start-up, and appends that never tear a line.

Optuna's journal is one JSON operation a line. A torn write (a killed process, a full disk)
leaves a last line that does not parse; Optuna skips it while it is last, and raises on every
read once anything is appended after it. So the tail is repaired before this run appends
anything, under the journal's own lock, and a failed append is cut back to where it began.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any

from optuna.storages.journal import JournalFileBackend

from nas.errors import UserError
from nas.optuna_internals import BaseJournalFileLock, get_lock_file

__all__ = ["SafeJournalBackend", "JournalWriteError", "FlockLock", "repair"]


class FlockLock(BaseJournalFileLock):
    """An exclusive ``flock`` on ``<journal>.flock``. The kernel releases it when its holder
    dies, so a worker killed while appending stalls nobody (Optuna's lock files wait out a
    30-second grace period)."""

    def __init__(self, path: str | Path) -> None:
        self._path = f"{path}.flock"
        self._fd: int | None = None

    def acquire(self) -> bool:
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the descriptor drops the lock


class JournalWriteError(UserError):
    """The journal could not be appended to (disk full, read-only): nothing torn is left."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code=1)


def _good_prefix(data: bytes) -> int:
    """Bytes of ``data`` made of whole lines that each parse as a JSON object."""
    end = 0
    for line in data.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            break
        try:
            op = json.loads(line)
        except (ValueError, RecursionError):  # JSONDecodeError, not UTF-8, absurdly nested
            break
        if not isinstance(op, dict) or not isinstance(op.get("op_code"), int):
            break
        end += len(line)
    return end


def repair(path: str | Path) -> str:
    """Cut a damaged tail off the journal at ``path``, keeping it aside in a file.

    Returns a one-line warning, or "" when the journal was whole. Every complete operation
    before the first damaged line is kept; the damaged line and anything after it (which
    Optuna could never read) go to ``<path>.damaged-<time>``.
    """
    path = Path(path)
    if not path.is_file():
        return ""
    with get_lock_file(FlockLock(path)):
        data = path.read_bytes()
        end = _good_prefix(data)
        if end == len(data):
            return ""
        aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}-"
                               f"{time.time_ns() % 10**9:09d}")
        aside.write_bytes(data[end:])
        with open(path, "r+b") as f:
            f.truncate(end)
            f.flush()
            os.fsync(f.fileno())
    lines = data[end:].count(b"\n") + (not data.endswith(b"\n"))
    return (f"warning: {path}: cut a damaged tail of {len(data) - end:,} bytes ({lines} "
            f"line(s), a torn or failed write) and kept it in {aside.name}; every complete "
            "operation before it is kept")


class SafeJournalBackend(JournalFileBackend):
    """Optuna's file backend with a lock the kernel releases, and appends that leave no torn
    line: a failed write is truncated back, and a torn tail left by a process killed in the
    middle of its write is cut before anything is appended after it."""

    def __init__(self, file_path: str) -> None:
        super().__init__(file_path, lock_obj=FlockLock(file_path))

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        data = ("\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n"
                ).encode("utf-8")
        with get_lock_file(self._lock):
            fd = os.open(self._file_path, os.O_RDWR | os.O_APPEND)
            view = memoryview(data)
            try:
                start = _whole_end(fd)
                while view:  # unbuffered: nothing is left to be flushed after a failure
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            except OSError as exc:
                if view:  # a short write: cut it (a failed fsync of a whole line keeps it)
                    _cut(fd, start)
                raise JournalWriteError(f"cannot append to the study journal {self._file_path}: "
                                       f"{exc.strerror}") from None
            finally:
                os.close(fd)


def _whole_end(fd: int) -> int:
    """The journal's size once a torn last line (no newline: its writer was killed in the
    middle) is cut, so that the next operation starts a line of its own."""
    size = os.lseek(fd, 0, os.SEEK_END)
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return size
    tail = os.pread(fd, min(size, 1 << 20), max(0, size - (1 << 20)))
    end = size - len(tail) + tail.rfind(b"\n") + 1 if b"\n" in tail else 0
    os.ftruncate(fd, end)
    return end


def _cut(fd: int, size: int) -> None:
    """Truncate the journal to ``size`` after a failed write (best effort: the disk may be
    gone)."""
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    except OSError:
        pass
