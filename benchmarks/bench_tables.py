"""The published tables as samples of networks for the benchmarks: (name, genotype, truth).

NAS-Bench-201: its 15,625 cells, truth the 200-epoch validation accuracy. NAS-Bench-Macro: its
3,969 distinct networks (one per network, named by its canonical string), truth the mean test
accuracy of its three trainings.
"""

from __future__ import annotations

import random
from pathlib import Path

import searchspace
from evaluators.nbmacro_table import load_nbmacro
from evaluators.table import load_nb201
from searchspace import nb201, nbmacro

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
TABLE_DIRS = {"nb201": SHARED / "nb201", "nbmacro": SHARED / "nbmacro"}
Network = tuple[str, searchspace.Genotype, float]  # (the benchmark's string, genotype, truth)


def population(space: str, table: str | Path) -> list[tuple[str, dict, float, int, int]]:
    """Every distinct network as (string, assignment, truth, parameters, multiply-adds) by
    truth then string (a stable order for sampling); the costs are the table's."""
    if space == "nb201":
        rows = sorted(load_nb201(table).items(), key=lambda kv: (kv[1].val, kv[1].index))
        return [(r.arch, dict(zip(nb201.DECISIONS, ops)), r.val, round(r.params_m * 1e6),
                 round(r.flops_m * 1e6)) for ops, r in rows]
    one = {nbmacro.canonical(a): r for a, r in load_nbmacro(table).items()}
    return sorted(((a, nbmacro.parse_arch(a), r.mean, r.params, r.flops)
                   for a, r in one.items()), key=lambda x: (x[2], x[0]))


def sample(space: str, n: int, seed: int, table: str | Path) -> list[Network]:
    """``n`` networks, one drawn from each of ``n`` equal-count bins of truth (seeded)."""
    rows = population(space, table)
    rng = random.Random(seed)
    edges = [round(i * len(rows) / n) for i in range(n + 1)]
    picked = [rows[rng.randrange(edges[i], edges[i + 1])] for i in range(n)]
    decode = nb201.genotype if space == "nb201" else nbmacro.genotype
    return [(arch, decode(a), truth) for arch, a, truth, *_ in picked]
