"""Budgets: "600M-madds", "0.6G-madds", "600M", "450M-macs", "1.2G-flops", "3M-params",
"4ms-latency" (this machine's CPU, batch 1, one thread), "4ms-latency@cuda",
"4ms-latency@table.json" (a table measured on the target), joined by commas."""

from __future__ import annotations

import re
from dataclasses import dataclass

from nas.errors import UserError
from searchspace.cost import Limits
from searchspace.limits import MAX_MADDS, MAX_PARAMS

__all__ = ["Budget", "parse_budget", "FORMS"]

FORMS = ("600M-madds", "0.6G-madds", "600M (multiply-adds)", "450M-macs", "1.2G-flops",
         "3M-params", "4ms-latency", "4ms-latency@cuda", "4ms-latency@table.json",
         "600M-madds,3M-params")
_SCALE = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}
_UNITS = {"madds": ("madds", 1.0), "macs": ("madds", 1.0), "mac": ("madds", 1.0),
          "flops": ("madds", 0.5), "params": ("params", 1.0)}
_PART = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?)\s*(?:-\s*([a-z]+))?\s*$", re.I)
_LATENCY = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|us)\s*-\s*latency\s*(?:@\s*(\S.*?))?\s*$",
                      re.I)
MAX_LATENCY_MS = 3.6e6  # an hour a forward pass: past it, a typo


@dataclass(frozen=True)
class Budget:
    """Upper limits on multiply-adds and/or parameters, and the text the user wrote.

    Example:
        >>> parse_budget("1.2G-flops").limits.madds
        600000000.0
        >>> parse_budget("600M-madds,4ms-latency@cuda").limits.latency_on
        'cuda'
    """

    limits: Limits
    text: str

    def __str__(self) -> str:
        return self.text


def parse_budget(text: str) -> Budget:
    """Parse a budget; UserError listing the accepted forms otherwise."""
    limits: dict[str, float | str] = {}
    for part in str(text).split(","):
        if _LATENCY.match(part):
            _latency(part, text, limits)
            continue
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


def _latency(part: str, text: str, limits: dict) -> None:
    """Add the latency limit of ``part`` ("4ms-latency@target") to ``limits``."""
    m = _LATENCY.match(part)
    value = float(m.group(1)) / (1000.0 if m.group(2).lower() == "us" else 1.0)
    if not 0 < value <= MAX_LATENCY_MS:
        raise UserError(f"budget {part.strip()[:40]!r}: a latency from 0 to an hour, please")
    if "latency_ms" in limits:
        raise UserError(f"budget {text!r} limits latency twice")
    target = (m.group(3) or "cpu").strip()
    if target.lower() in ("cpu", "cuda") or re.fullmatch(r"cuda:\d+", target, re.I):
        target = target.lower()
    limits["latency_ms"], limits["latency_on"] = value, target
