"""Strategy quality through the real search loop (`nas.loop.run_worker`), in-memory storage.

    python benchmarks/strategies.py --space nb201 [--seeds 20] [--trials 100] [--jobs 2]
                                    [--data ../shared/data/nb201] [--out results/nb201]
    python benchmarks/strategies.py [--seeds 5] [--trials 200] [--budget 600M-madds]

``--space nb201`` runs NAS-Bench-201's protocol: each search scores ``--trials`` distinct
cells, the strategy sees the table's 200-epoch validation accuracy (``nb201-table``), and
the table reports the best validation accuracy found (mean +- sd over seeds) beside the
published results; ``--out`` also writes the table, per-seed results and mean curves (JSON)
and a plot of the best-so-far curves. Without it: the best value of a synthetic objective
over the `cells` decisions inside a multiply-add budget (per-decision scores plus pairwise
interactions).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import Counter
from pathlib import Path

import optuna

import searchspace
from evaluators.table import NB201Table
from nas.budget import parse_budget
from nas.report_table import table
from nas.strategies import OURS
from nas.strategies.synthetic import SyntheticObjective
from nas.loop import Stop, run_worker
from nas.trial import Status, records

# NAS-Bench-201 (Dong & Yang, ICLR 2020), Table 5: CIFAR-10 validation accuracy of the cell
# found, 500 runs, about 100 cells a search scored by a 12-epoch reward (ours: the 200-epoch
# table value, noise-free, so ours should come out higher).
PUBLISHED = {"evolution": ("REA", 91.19, 0.31), "rl": ("REINFORCE", 91.09, 0.37),
             "random": ("random search", 90.93, 0.36)}
OPTIMUM = 91.61


def _quiet(line: str) -> None:
    pass


def nb201_search(strategy: str, seed: int, trials: int, ev: NB201Table, screen=None) -> dict:
    """One search: best-so-far validation accuracy (%) per scored cell, and what it repeated
    (``screen``: each trial's cell picked among several proposals)."""
    space = searchspace.load_space("nb201")
    storage = optuna.storages.InMemoryStorage()
    start = time.perf_counter()
    run_worker(storage, "bench", space, strategy, seed, ev.evaluate, searchspace.Limits(),
               Stop(trials=trials),
               log=_quiet, screen=screen)
    seconds = time.perf_counter() - start
    trials_ = records(optuna.load_study(study_name="bench", storage=storage))
    curve, best = [], 0.0
    scored = [t for t in trials_ if t.scored]
    for t in scored:
        best = max(best, 100 * t.values[0])
        curve.append(round(best, 4))
    keys = Counter(t.key for t in scored)
    cells = Counter(ev.row(t.decisions).arch for t in scored)
    return {"curve": curve, "seconds": round(seconds, 3),
            "trained_twice": sum(n - 1 for n in keys.values()),
            "cells_twice": sum(n - 1 for n in cells.values()),
            "reused": sum(t.status == Status.REUSED for t in trials_)}


def _mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


_TABLE: NB201Table | None = None


def _one(job: tuple[str, int, int, str | None]) -> dict:
    """A search in a worker process (each loads the table once)."""
    global _TABLE
    strategy, seed, trials, data = job
    if _TABLE is None:
        _TABLE = NB201Table(data)
    return nb201_search(strategy, seed, trials, _TABLE)


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)  # processes share the cores: PPO's small ops crawl otherwise


def nb201_searches(jobs: list[tuple[str, int, int, str | None]], processes: int) -> list[dict]:
    """``nb201_search`` for each (strategy, seed, trials, table) job, in ``processes``
    processes of one torch thread each (or here, when 1)."""
    if processes <= 1:
        return [_one(job) for job in jobs]
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(processes, initializer=_one_thread) as pool:
        return pool.map(_one, jobs, chunksize=1)


def run_nb201(args: argparse.Namespace) -> None:
    NB201Table(args.data).load()  # a missing table fails here, in one line
    marks = [m for m in (25, 50, 100, 200) if m <= args.trials]
    strategies = args.strategies.split(",")
    jobs = [(st, s, args.trials, args.data) for st in strategies for s in range(args.seeds)]
    done = nb201_searches(jobs, args.jobs)
    results, rows = {}, []
    for strategy in strategies:
        runs = [r for job, r in zip(jobs, done) if job[0] == strategy]
        results[strategy] = runs
        cells = []
        for m in marks:
            mean, sd = _mean_sd([r["curve"][min(m, len(r["curve"])) - 1] for r in runs])
            cells.append(f"{mean:.2f} +- {sd:.2f}")
        name, pub, pub_sd = PUBLISHED.get(strategy, ("", None, None))
        rows.append((strategy, *cells,
                     f"{statistics.mean(r['reused'] for r in runs):.1f}",
                     f"{statistics.mean(r['trained_twice'] for r in runs):.1f}",
                     f"{pub:.2f} +- {pub_sd:.2f} ({name})" if pub else "",
                     f"{statistics.mean(r['seconds'] for r in runs):.2f}"))
    header = ("strategy", *[f"best val @ {m}" for m in marks], "reused proposals",
              "trained twice", "published @ ~100", "s per search")
    text = table(header, rows, right=set(range(1, len(header))))
    note = (f"NAS-Bench-201 cifar10-valid, best validation accuracy (%) among the cells scored, "
            f"mean +- sd over {args.seeds} seeds, {args.trials} distinct cells a search; "
            f"the optimum is {OPTIMUM}. Published: Dong & Yang 2020, Table 5 (12-epoch reward, "
            "500 runs).")
    print(text + "\n\n" + note)
    if args.out:
        _write(Path(args.out), results, header, rows, note, args)


def summarise(results: dict[str, list[dict]]) -> dict[str, dict]:
    """Per strategy: each seed's best, repeats and seconds, and the mean and sd best-so-far
    curve (what the table and plot are made of, without every seed's curve)."""
    out = {}
    for strategy, runs in results.items():
        n = min(len(r["curve"]) for r in runs)
        per_step = [[r["curve"][i] for r in runs] for i in range(n)]
        out[strategy] = {
            "best_per_seed": [r["curve"][-1] for r in runs],
            **{k: [r[k] for r in runs] for k in ("reused", "trained_twice", "cells_twice",
                                                  "seconds")},
            "mean_curve": [round(statistics.mean(v), 3) for v in per_step],
            "sd_curve": [round(statistics.pstdev(v), 3) for v in per_step]}
    return out


def _write(out: Path, results: dict, header: tuple, rows: list, note: str,
           args: argparse.Namespace) -> None:
    import platform

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import torch

    out.mkdir(parents=True, exist_ok=True)
    env = (f"CPU ({platform.machine()}, {torch.get_num_threads()} threads); torch "
           f"{torch.__version__}, optuna {optuna.__version__}, Python "
           f"{platform.python_version()}")
    command = (f"python benchmarks/strategies.py --space nb201 --seeds {args.seeds} "
               f"--trials {args.trials} --jobs {args.jobs} --out {args.out}")
    rows_json = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}"
                            for k, v in summarise(results).items())  # one line a strategy
    (out / "strategies.json").write_text(
        f'{{"command": {json.dumps(command)}, "environment": {json.dumps(env)},\n'
        f' "results": {{\n{rows_json}\n}}}}\n')
    md = ["# Strategies on NAS-Bench-201", "", f"`{command}`", "", f"- {env}",
          f"- date: {time.strftime('%Y-%m-%d')}", "",
          "| " + " | ".join(header) + " |", "|" + "---|" + "---:|" * (len(header) - 1)]
    md += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    md += ["", note, "", "![best-so-far curves](curves.png)", ""]
    (out / "strategies.md").write_text("\n".join(md))
    fig, ax = plt.subplots(figsize=(7, 4.4))
    for i, (strategy, runs) in enumerate(results.items()):
        n = min(len(r["curve"]) for r in runs)
        curves = np.array([r["curve"][:n] for r in runs])
        x = np.arange(1, n + 1)
        mean, sd = curves.mean(0), curves.std(0)
        ax.plot(x, mean, color=f"C{i}", lw=2, label=strategy)
        ax.fill_between(x, mean - sd, mean + sd, color=f"C{i}", alpha=0.07, lw=0)
        if strategy in PUBLISHED:
            name, pub, pub_sd = PUBLISHED[strategy]
            ax.errorbar([n + 3 + 2 * i], [pub], yerr=[pub_sd], marker="D", color=f"C{i}",
                        ms=6, capsize=3, ls="none", label=f"{name}, published")
    ax.axhline(OPTIMUM, color="0.3", ls="--", lw=1, label=f"optimum {OPTIMUM}")
    ax.set_ylim(89.5, 91.8)
    ax.set_xlim(1, n + 14)
    ax.set_xlabel("cells scored (published results at the right, mean +- sd)")
    ax.set_ylabel("best validation accuracy so far (%)")
    ax.set_title(f"NAS-Bench-201 (CIFAR-10 valid), mean +- sd over {args.seeds} seeds")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=120)
    plt.close(fig)
    print(f"wrote {out / 'strategies.md'}, {out / 'strategies.json'}, {out / 'curves.png'}")


def best_curve(strategy: str, seed: int, trials: int, limits: searchspace.Limits
               ) -> list[float]:
    """Synthetic objective: best noise-free value after each evaluated trial."""
    space = searchspace.load_space("cells")
    objective = SyntheticObjective(space, seed=seed)
    storage = optuna.storages.InMemoryStorage()
    run_worker(storage, "bench", space, strategy, seed,
               lambda g, s, a: objective.evaluate(g, s, a), limits, Stop(trials=trials),
               log=_quiet)
    study = optuna.load_study(study_name="bench", storage=storage)
    curve, best = [], float("-inf")
    for t in records(study):
        if t.scored:
            best = max(best, objective.value(t.decisions))  # noise-free value of what was found
            curve.append(best)
    return curve


def run_synthetic(args: argparse.Namespace) -> None:
    limits = parse_budget(args.budget).limits
    marks = [m for m in (50, 100, 200) if m <= args.trials]
    rows = []
    for strategy in args.strategies.split(","):
        start = time.perf_counter()
        curves = [best_curve(strategy, s, args.trials, limits) for s in range(args.seeds)]
        cells = []
        for m in marks:
            mean, sd = _mean_sd([c[min(m, len(c)) - 1] for c in curves])
            cells.append(f"{mean:.3f} +- {sd:.3f}")
        rows.append((strategy, *cells, f"{(time.perf_counter() - start) / args.seeds:.1f}"))
    print(table(("strategy", *[f"best @ {m}" for m in marks], "s per run"), rows,
                right=set(range(1, len(marks) + 2))))
    print(f"\nsynthetic objective on the cells space, budget {args.budget}, "
          f"{args.seeds} seeds; higher is better")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--space", default="cells", choices=("cells", "nb201", "nbmacro"))
    p.add_argument("--seeds", type=int)
    p.add_argument("--trials", type=int)
    p.add_argument("--budget", default="600M-madds", help="cells only")
    p.add_argument("--data", help="nb201: the table's CSV or folder (default: $NAS_NB201)")
    p.add_argument("--out", help="nb201: write strategies.md, strategies.json, curves.png here")
    p.add_argument("--strategies", default=",".join(OURS))
    p.add_argument("--jobs", type=int, default=1, help="nb201: searches run in parallel "
                                                      "processes (each search stays serial)")
    p.add_argument("--budgets", default="40M,50M,60M,none", help="nbmacro: multiply-adds")
    p.add_argument("--first-seed", type=int, default=0, help="nbmacro")
    p.add_argument("--screen", type=int, default=1, help="nbmacro: also each strategy "
                                                         "screened by --by among K proposals")
    p.add_argument("--by", default="params", help="nbmacro: the screen's zero-cost score")
    p.add_argument("--screened", help="nbmacro: the strategies screened (default: all)")
    p.add_argument("--rescore", default="5", help="nbmacro: the final choice's networks "
                                                  "trained again (a list: each measured, the "
                                                  "first in the table)")
    args = p.parse_args()
    if args.space == "nbmacro":
        import nbmacro_strategies

        args.seeds, args.trials = args.seeds or 100, args.trials or 100
        args.strategies = args.strategies if args.strategies != ",".join(OURS) else \
            "random,evolution,rl,tpe"
        nbmacro_strategies.main(args)
        return
    nb = args.space == "nb201"
    args.seeds = args.seeds or (20 if nb else 5)
    args.trials = args.trials or (100 if nb else 200)
    (run_nb201 if nb else run_synthetic)(args)


if __name__ == "__main__":
    main()
