"""Budgets: "600M-madds", "0.6G-madds", "600M", "450M-macs", "1.2G-flops", "3M-params", joined."""

from __future__ import annotations

import re
from dataclasses import dataclass

from nas.errors import UserError
from searchspace.cost import Limits
from searchspace.limits import MAX_MADDS, MAX_PARAMS

__all__ = ["Budget", "parse_budget", "FORMS"]

FORMS = ("600M-madds", "0.6G-madds", "600M (multiply-adds)", "450M-macs", "1.2G-flops",
         "3M-params", "600M-madds,3M-params")
_SCALE = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}
_UNITS = {"madds": ("madds", 1.0), "macs": ("madds", 1.0), "mac": ("madds", 1.0),
          "flops": ("madds", 0.5), "params": ("params", 1.0)}
_PART = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?)\s*(?:-\s*([a-z]+))?\s*$", re.I)


@dataclass(frozen=True)
class Budget:
    """Upper limits on multiply-adds and/or parameters, and the text the user wrote.

    Example:
        >>> parse_budget("1.2G-flops").limits
        Limits(madds=600000000.0, params=None)
    """

    limits: Limits
    text: str

    def __str__(self) -> str:
        return self.text


def parse_budget(text: str) -> Budget:
    """Parse a budget; UserError listing the accepted forms otherwise."""
    limits: dict[str, float] = {}
    for part in str(text).split(","):
        m = _PART.match(part)
        unit = (m.group(3) or "madds").lower() if m else ""
        if not m or unit not in _UNITS:
            raise UserError(f"cannot read budget {text!r}; accepted forms: {', '.join(FORMS)}")
        key, factor = _UNITS[unit]
        value = float(m.group(1)) * _SCALE[m.group(2).lower()] * factor
        if value <= 0:
            raise UserError(f"budget {part.strip()!r} must be positive")
        ceiling = {"madds": MAX_MADDS, "params": MAX_PARAMS}[key]
        if value > ceiling:  # also an infinity: 400 digits read as a float
            raise UserError(f"budget {part.strip()[:40]!r} is over the limit of {ceiling:.0e} "
                            f"{key}, far above any real network")
        if key in limits:
            raise UserError(f"budget {text!r} limits {key} twice")
        limits[key] = value
    return Budget(Limits(**limits), str(text))
