"""How the space is searched, and what the user touches: the CLI, budgets, studies, reports.

    import nas
    budget = nas.parse_budget("600M-madds")                      # budget.limits
    sampler = nas.strategies.make("evolution", space=space, seed=0)  # an Optuna sampler

``nas.strategies`` (and with it Optuna and torch) is imported on first use, so that light
commands such as ``nas zoo`` start at once.
"""

from __future__ import annotations

import importlib
from typing import Any

from nas.budget import Budget, parse_budget
from nas.errors import UserError
from nas.paths import check_writable

__all__ = ["UserError", "Budget", "parse_budget", "check_writable", "strategies"]


def __getattr__(name: str) -> Any:
    if name == "strategies":
        return importlib.import_module("nas.strategies")
    raise AttributeError(f"module 'nas' has no attribute {name!r}")
