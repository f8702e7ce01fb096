"""The one error type the CLI turns into a single line and a non-zero exit."""

from __future__ import annotations

__all__ = ["UserError"]


class UserError(Exception):
    """Something the user can fix: printed as one line, exit code ``code``."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code
