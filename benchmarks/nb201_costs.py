"""Our cost counter against NAS-Bench-201's published table, for all 15,625 cells.

    python benchmarks/nb201_costs.py [--data ../shared/data/nb201]

Prints how many cells match the table's multiply-adds and parameters (within 0.1%) when
counted as written (``cost(g, prune=False)``, dead edges included, as the benchmark builds
them), the worst relative difference, how many cells carry edges that reach no output (not
built here, so counted lower), and the counter's speed.
"""

from __future__ import annotations

import argparse
import time

import searchspace
from evaluators.table import load_nb201
from nas.report_table import table
from searchspace import nb201


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="the table's CSV or folder (default: $NAS_NB201)")
    args = p.parse_args()
    rows = load_nb201(args.data)
    space = searchspace.load_space("nb201")
    match = dead = 0
    worst_madds = worst_params = 0.0
    start = time.perf_counter()
    for ops, row in rows.items():
        g = space.genotype(dict(zip(nb201.DECISIONS, ops)))
        c = searchspace.cost(g, prune=False)
        dm = abs(c.madds / 1e6 - row.flops_m) / row.flops_m
        dp = abs(c.params / 1e6 - row.params_m) / row.params_m
        worst_madds, worst_params = max(worst_madds, dm), max(worst_params, dp)
        match += dm <= 1e-3 and dp <= 1e-3 and g.name == row.arch
        dead += searchspace.cost(g).madds < c.madds
    seconds = time.perf_counter() - start
    print(table(("cells", "match (<= 0.1%)", "worst madds diff", "worst params diff",
                 "cells with dead conv edges", "ms per cell (decode + 2 costs)"),
                [(f"{len(rows):,}", f"{match:,}", f"{100 * worst_madds:.4f}%",
                  f"{100 * worst_params:.4f}%", f"{dead:,}",
                  f"{1000 * seconds / len(rows):.2f}")], right=set(range(6))))


if __name__ == "__main__":
    main()
