"""Strategy quality on a synthetic objective over the `cells` decisions, inside a budget.

Mean (and spread over seeds) of the best objective found after 50, 100 and 200 trials, per
strategy, through the real search loop (`nas.study.run_worker`) with in-memory storage.

    python benchmarks/strategies.py [--seeds 5] [--trials 200] [--budget 600M-madds]
"""

from __future__ import annotations

import argparse
import statistics
import time

import optuna

import searchspace
from nas.budget import parse_budget
from nas.report_table import table
from nas.strategies import NAMES
from nas.strategies.synthetic import SyntheticObjective
from nas.study import Stop, run_worker


def best_curve(strategy: str, seed: int, trials: int, limits: dict[str, float]) -> list[float]:
    """Best objective after each evaluated trial."""
    space = searchspace.load_space("cells")
    objective = SyntheticObjective(space, seed=seed)
    storage = optuna.storages.InMemoryStorage()
    run_worker(storage, "bench", space, strategy, seed,
               lambda g, s, a: objective.evaluate(g, s, a), limits, Stop(trials=trials))
    study = optuna.load_study(study_name="bench", storage=storage)
    curve, best = [], float("-inf")
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        if t.user_attrs.get("status") == "ok":
            best = max(best, objective.value(t.params))  # noise-free value of what was found
            curve.append(best)
    return curve


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--trials", type=int, default=200)
    p.add_argument("--budget", default="600M-madds")
    p.add_argument("--strategies", default=",".join(NAMES))
    args = p.parse_args()
    limits = parse_budget(args.budget).limits
    marks = [m for m in (50, 100, 200) if m <= args.trials]
    rows = []
    for strategy in args.strategies.split(","):
        start = time.perf_counter()
        curves = [best_curve(strategy, s, args.trials, limits) for s in range(args.seeds)]
        cells = []
        for m in marks:
            vals = [c[min(m, len(c)) - 1] for c in curves]
            sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
            cells.append(f"{statistics.mean(vals):.3f} +- {sd:.3f}")
        rows.append((strategy, *cells, f"{(time.perf_counter() - start) / args.seeds:.1f}"))
    print(table(("strategy", *[f"best @ {m}" for m in marks], "s per run"), rows,
                right=set(range(1, len(marks) + 2))))
    print(f"\nsynthetic objective on the cells space, budget {args.budget}, "
          f"{args.seeds} seeds; higher is better")


if __name__ == "__main__":
    main()
