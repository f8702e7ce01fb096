"""Zero-cost screening: of a trial's proposals, train the one a zero-cost score ranks first.

    screen = zero_cost_screen(space, k=10, by="vote:naswot+params", data=...)
    sampler = nas.strategies.make("evolution", space=space, screen=screen)
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from evaluators.zero_cost import PROXIES, TRIVIAL, ZeroCost, vote
from nas.errors import UserError
from nas.strategies.base import Screen
from searchspace import SearchSpace

__all__ = ["ZeroCostPick", "zero_cost_screen", "parse_by", "DEFAULT_BY"]

# the best zero-cost score per second measured on NAS-Bench-201 (results/nb201/fidelity.md)
DEFAULT_BY = "params"


def parse_by(text: str) -> list[str]:
    """'naswot' -> ['naswot']; 'vote:synflow+params' -> ['synflow', 'params']; UserError in
    one line for a name that is not a proxy."""
    names = text.removeprefix("vote:").split("+")
    known = [*PROXIES, *TRIVIAL]
    bad = [n for n in names if n not in known]
    if bad or (len(names) > 1 and not text.startswith("vote:")):
        raise UserError(f"--screen-by {text!r}: expected one of {', '.join(known)}, or "
                        "vote:A+B[+...] of them")
    return names


class ZeroCostPick:
    """Index of the pool's best network by one zero-cost score, or by the rank vote of several;
    scores are kept by network key, so a network is scored once. A NaN score counts as the
    worst. Networks are scored as the space decodes them (not at a proxy's reduced width or
    resolution), on the CPU."""

    def __init__(self, space: SearchSpace, names: list[str], zc: ZeroCost) -> None:
        self.space, self.names, self.zc = space, names, zc
        self.cache: dict[str, dict[str, float]] = {}
        self.seconds = 0.0  # spent scoring, all pools together
        self.scored = 0

    def __call__(self, pool: list[dict[str, Any]]) -> int:
        start = time.perf_counter()
        scores = []
        for a in pool:
            g = self.space.genotype(a)
            key = g.key()
            if key not in self.cache:
                self.cache[key] = self.zc.score(g, self.names)
                self.scored += 1
            scores.append(self.cache[key])
        clean = [{n: -np.inf if np.isnan(v) else v for n, v in s.items()} for s in scores]
        values = ([s[self.names[0]] for s in clean] if len(self.names) == 1
                  else vote(clean, self.names))
        self.seconds += time.perf_counter() - start
        return int(np.argmax(values))  # ties: the strategy's own first proposal


def zero_cost_screen(space: SearchSpace, k: int, by: str = DEFAULT_BY,
                     data: str | Path | None = None, seed: int = 0) -> Screen | None:
    """A Screen of ``k`` proposals a trial picked by ``by``; None when ``k`` is 1."""
    if k < 1:
        raise UserError("--screen must be at least 1 (1: no screening)")
    names = parse_by(by)
    if k == 1:
        return None
    return Screen(k, ZeroCostPick(space, names, ZeroCost(data, seed=seed)))
