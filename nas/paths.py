"""Output paths checked before any work: a bad ``-o`` fails in one line at once, not after
training."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from nas.errors import UserError

__all__ = ["check_writable"]


def check_writable(path: str | Path, folder: bool = False) -> None:
    """UserError unless ``path`` can be written: a file (or, with ``folder``, a folder) that
    exists and is writable, or one whose nearest existing parent is a writable folder (the
    missing folders between are made when the output is written).

    The check writes and removes a temporary file, so it also catches what permissions do
    not show (``/proc``, a read-only mount, root on a read-only folder behaves as it will).

    Example:
        >>> check_writable("runs/new/model.py")  # nothing raised: runs/ can be made here
    """
    p = Path(path).expanduser()
    what = "folder" if folder else "file"
    if p.exists():
        if p.is_dir() != folder:
            raise UserError(f"{path}: is a {'file' if folder else 'folder'}, not a {what}")
        if folder:
            _try_write(p, path)
        else:
            _try_open(p, path)
        return
    parent = p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"{path}: cannot make the {what}: {parent} is a file, not a folder")
    _try_write(parent, path)


def _try_write(folder: Path, path: str | Path) -> None:
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise UserError(f"{path}: cannot write in {folder} ({exc.strerror or exc})") from None


def _try_open(file: Path, path: str | Path) -> None:
    """Open an existing file for writing without changing it (non-blocking: a FIFO without a
    reader fails instead of waiting)."""
    try:
        os.close(os.open(file, os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK))
    except OSError as exc:
        raise UserError(f"{path}: cannot write the file ({exc.strerror or exc})") from None
