"""Our cost counter against NAS-Bench-Macro's published table, for all 6,561 strings.

    python benchmarks/nbmacro_costs.py [--data ../shared/data/nbmacro]

Prints how many strings match the table exactly (parameters equal, multiply-adds equal once
the classifier's bias, which our convention counts and the benchmark's does not, is taken
off), how many distinct keys the strings decode to (the benchmark has 3,969 networks), whether
the strings of one key share one result, and the counter's speed.
"""

from __future__ import annotations

import argparse
import time

import searchspace
from evaluators.nbmacro_table import CLASSIFIER_BIAS, load_nbmacro
from nas.report_table import table
from searchspace import nbmacro


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="the table's JSON or folder (default: $NAS_NBMACRO)")
    args = p.parse_args()
    rows = load_nbmacro(args.data)
    space = searchspace.load_space("nbmacro")
    match, keys = 0, {}
    start = time.perf_counter()
    for arch, row in rows.items():
        g = space.genotype(nbmacro.parse_arch(arch))
        c = searchspace.cost(g)
        match += (c.params, c.madds - CLASSIFIER_BIAS) == (row.params, row.flops)
        keys.setdefault(g.key(), set()).add(row.accs)
    seconds = time.perf_counter() - start
    shared = sum(len(v) == 1 for v in keys.values())
    print(table(("strings", "exact (params, madds)", "distinct keys", "keys with one result",
                 "ms per string (decode + cost + key)"),
                [(f"{len(rows):,}", f"{match:,}", f"{len(keys):,}", f"{shared:,}",
                  f"{1000 * seconds / len(rows):.2f}")], right=set(range(5))))


if __name__ == "__main__":
    main()
