"""How the space is searched, and what the user touches: the CLI, budgets, studies, reports."""

from nas.errors import UserError

__all__ = ["UserError"]
