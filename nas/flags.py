"""argparse ``type=`` functions for numeric flags: a NaN, an infinity or a value out of range
is refused while parsing, in one line (``argparse.ArgumentTypeError``), before any work."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

__all__ = ["MAX_SEED", "number", "seed", "finite", "device"]

# Seeds run from 0 to 2**22 - 1: the search seeds worker i's sampler with seed * 1000 + i,
# which numpy (under Optuna's samplers) needs below 2**32, and trains trial n with that times
# 100,003 plus n, which must stay below torch's 2**63. One bound for every command.
MAX_SEED = 2**22 - 1


def number(low: float, high: float, kind: type = float) -> Callable[[str], float]:
    """A ``type=`` that reads a ``kind`` (int or float) from ``low`` to ``high`` inclusive.

    Example:
        >>> p = argparse.ArgumentParser()
        >>> _ = p.add_argument("--step", type=number(0.01, 1.0))
        >>> p.parse_args(["--step", "0.2"]).step
        0.2
    """
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except (ValueError, OverflowError):  # also an integer of more than 4,300 digits
            wanted = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text[:40]!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low:,} to {high:,}, got "
                                             f"{text[:40]}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its own messages
    return parse


seed = number(0, MAX_SEED, int)
finite = number(-math.inf, math.inf)  # any finite number (a later check gives the range)


def device(text: str) -> str:
    """``--device``: cpu, cuda, cuda:N or mps, and present on this machine."""
    from evaluators.recipe import RecipeError, check_device

    try:
        return check_device(text)
    except RecipeError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("device: ")) from None
