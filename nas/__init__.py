"""How the space is searched, and what the user touches: the CLI, budgets, studies, reports.

    import nas
    result = nas.search("cells", my_score, budget="50M-madds", trials=30)  # see nas.api
    nas.export(result.best, "model.py")
    budget = nas.parse_budget("600M-madds")                      # budget.limits
    sampler = nas.strategies.make("evolution", space=space, seed=0)  # an Optuna sampler

``nas.search``, ``nas.scale``, ``nas.export`` and ``nas.strategies`` (and with them Optuna
and torch) are imported on first use, so that light commands such as ``nas zoo`` start at
once.
"""

from __future__ import annotations

import importlib
from typing import Any

from nas.budget import Budget, parse_budget
from nas.errors import UserError
from nas.paths import check_writable

__all__ = ["UserError", "Budget", "parse_budget", "check_writable", "strategies", "search",
           "SearchResult", "scale", "export"]

_API = ("search", "SearchResult", "scale", "export")


def __getattr__(name: str) -> Any:
    if name == "strategies":
        return importlib.import_module("nas.strategies")
    if name in _API:
        return getattr(importlib.import_module("nas.api"), name)
    raise AttributeError(f"module 'nas' has no attribute {name!r}")
