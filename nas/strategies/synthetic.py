"""A synthetic objective over a space's decisions, for checking strategies without training.

Each decision's choices get seeded random scores, and some pairs of decisions interact
(their joint choice adds a seeded score), so a strategy must learn combinations, not only
single decisions. Values lie in [0, 1]; a little seeded noise mimics a proxy's variance.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

import searchspace
from evaluators.base import Evaluation, Status

__all__ = ["SyntheticObjective"]


class SyntheticObjective:
    """f(assignment) = weighted per-decision scores + pairwise interactions (+ noise)."""

    def __init__(self, space: searchspace.SearchSpace, seed: int = 0, pairs: int = 8,
                 noise: float = 0.01) -> None:
        rng = np.random.default_rng(seed)
        self.space = space
        self.names = list(space.decisions)
        self.unary = {n: rng.random(len(c)) ** 2 for n, c in space.decisions.items()}
        self.weight = {n: rng.random() for n in self.names}
        combos = [(a, b) for i, a in enumerate(self.names) for b in self.names[i + 1:]]
        picked = rng.choice(len(combos), size=min(pairs, len(combos)), replace=False)
        self.pairs = {combos[i]: rng.random((len(space.decisions[combos[i][0]]),
                                             len(space.decisions[combos[i][1]]))) ** 3
                      for i in picked}
        self.noise = noise
        self._scale = sum(self.weight.values()) + len(self.pairs)

    def value(self, a: Mapping[str, Any], noise_seed: int | None = None) -> float:
        """The objective of an assignment (noise only when ``noise_seed`` is given)."""
        idx = {n: self.space.decisions[n].index(a[n]) for n in self.names}
        v = sum(self.weight[n] * self.unary[n][idx[n]] for n in self.names)
        v += sum(m[idx[x], idx[y]] for (x, y), m in self.pairs.items())
        v /= self._scale
        if noise_seed is not None and self.noise:
            v += random.Random(noise_seed).gauss(0, self.noise)
        return float(v)

    def evaluate(self, g: searchspace.Genotype, seed: int, assignment: Mapping[str, Any]
                 ) -> Evaluation:
        """An Evaluation as the proxy would return it."""
        c = searchspace.cost(g)
        return Evaluation(Status.OK, c.madds, c.params, self.value(assignment, seed), "val")


def run_synthetic(storage_url: str, study: str, strategy: str, seed: int, trials: int,
                  limits: searchspace.Limits, objective_seed: int = 0, seconds: float = 0.0,
                  heartbeat: tuple[int, int] | None = None) -> int:
    """One worker of a search on the synthetic objective (importable by spawned processes).

    ``seconds``: each evaluation takes this long, as training would; ``heartbeat``: a
    database storage's (interval, grace period) in seconds (default: nas.storage.HEARTBEAT).
    """
    from nas.loop import Stop, run_worker
    from nas.storage import HEARTBEAT, open_storage

    space = searchspace.load_space("cells")
    objective = SyntheticObjective(space, seed=objective_seed)

    def evaluate(g: searchspace.Genotype, s: int, a: Mapping[str, Any]) -> Evaluation:
        time.sleep(seconds)
        return objective.evaluate(g, s, a)

    return run_worker(open_storage(storage_url, heartbeat=heartbeat or HEARTBEAT), study, space,
                      strategy, seed, evaluate, limits, Stop(trials=trials))
