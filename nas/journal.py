"""The study journal file: a damaged tail cut at start-up, and appends that never tear a line.

Optuna's journal is one JSON operation a line. A torn write (a killed process, a full disk)
leaves a last line that does not parse; Optuna skips it while it is last, and raises on every
read once anything is appended after it. So the tail is repaired before this run appends
anything, under the journal's own lock, and a failed append is cut back to where it began.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
from optuna.storages.journal._file import get_lock_file

from nas.errors import UserError

__all__ = ["SafeJournalBackend", "JournalWriteError", "repair"]


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
            if not isinstance(json.loads(line), dict):
                break
        except ValueError:  # JSONDecodeError, or bytes that are not UTF-8
            break
        end += len(line)
    return end


def repair(path: str | Path, lock: JournalFileOpenLock | None = None) -> str:
    """Cut a damaged tail off the journal at ``path``, keeping it aside in a file.

    Returns a one-line warning, or "" when the journal was whole. Every complete operation
    before the first damaged line is kept; the damaged line and anything after it (which
    Optuna could never read) go to ``<path>.damaged-<time>``.
    """
    path = Path(path)
    if not path.is_file():
        return ""
    with get_lock_file(lock or JournalFileOpenLock(str(path))):
        data = path.read_bytes()
        end = _good_prefix(data)
        if end == len(data):
            return ""
        aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
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
    """Optuna's file backend whose failed append is truncated back: no torn line is left."""

    def __init__(self, file_path: str) -> None:
        self._safe_lock = JournalFileOpenLock(file_path)
        super().__init__(file_path, lock_obj=self._safe_lock)

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        data = ("\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n"
                ).encode("utf-8")
        with get_lock_file(self._safe_lock):
            fd = os.open(self._file_path, os.O_WRONLY | os.O_APPEND)
            start = os.lseek(fd, 0, os.SEEK_END)
            try:
                view = memoryview(data)
                while view:  # unbuffered: nothing is left to be flushed after a failure
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            except OSError as exc:
                _cut(fd, start)
                raise JournalWriteError(f"cannot append to the study journal {self._file_path}: "
                                       f"{exc.strerror}") from None
            finally:
                os.close(fd)


def _cut(fd: int, size: int) -> None:
    """Truncate the journal to ``size`` after a failed write (best effort: the disk may be
    gone)."""
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    except OSError:
        pass
