"""Strategy quality on NAS-Bench-Macro under multiply-add budgets, with a one-training reward.

    python benchmarks/strategies.py --space nbmacro [--seeds 100] [--first-seed 0]
        [--budgets 40M,50M,60M,none] [--strategies random,evolution,rl,tpe] [--screen 10]
        [--trials 100] [--rescore 5] [--jobs 2] [--out results/nbmacro]

Each search runs the real loop (``nas.loop.run_worker``, in-memory storage) over the
``nbmacro`` space, scored by ``nbmacro-table``: a trial's reward is one of the benchmark's
three trainings, picked by its seed, as one real training gives. After ``m`` networks scored
the search names the network of best single score; its regret is the mean accuracy of the
best network inside the budget minus the named one's mean (points). "final" is what
``nas search --trials 100`` does: ``100 - 2 x rescore`` networks searched (the same first
trials, since a search does not know its length), then the ``rescore`` best trained twice
more (``nas.rescore``) and the winner named by its mean. "found" is the share of searches
whose named network is the best inside the budget.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from pathlib import Path

import optuna

import searchspace
from evaluators.nbmacro_table import NBMacroTable
from nas.budget import parse_budget
from nas.rescore import Rescore, choose, rescore
from nas.screen import zero_cost_screen
from nas.loop import Stop, run_worker
from nas.trial import Record, records

MARKS = (25, 50, 100)
_STATE: dict = {}


def _quiet(line: str) -> None:
    pass


def limits_of(budget: str) -> searchspace.Limits:
    return searchspace.Limits() if budget == "none" else parse_budget(f"{budget}-madds").limits


def _table(path: str | None, budget: str) -> NBMacroTable:
    key = ("table", budget)
    if key not in _STATE:
        _STATE[key] = NBMacroTable(path, limits_of(budget))
        _STATE[key].load()
    return _STATE[key]


def _screen(k: int, by: str):
    if (k, by) not in _STATE:
        _STATE[(k, by)] = zero_cost_screen(searchspace.load_space("nbmacro"), k, by)
    return _STATE[(k, by)]


def one_search(job: tuple) -> dict:
    """(strategy, screen k, screen by, budget, seed, trials, rescore tops, table) -> the
    named network's regret after each network scored, the final choice's for each number of
    rescored networks (one search serves them all: it does not know its length), repeats."""
    strategy, k, by, budget, seed, trials, tops, path = job
    ev = _table(path, budget)
    best = ev.best_within(ev.limits).mean
    space = searchspace.load_space("nbmacro")
    storage = optuna.storages.InMemoryStorage()
    start = time.perf_counter()
    run_worker(storage, "bench", space, strategy, seed, ev.evaluate, ev.limits,
               Stop(trials=trials), log=_quiet, screen=_screen(k, by) if k > 1 else None)
    seconds = time.perf_counter() - start
    study = optuna.load_study(study_name="bench", storage=storage)
    trials_ = records(study)
    scored = [t for t in trials_ if t.scored]
    curve, named = [], None
    for t in scored:
        if named is None or t.values[0] > named.values[0]:
            named = t
        curve.append(round(best - 100 * named.worth, 4))
    finals = {str(top): round(best - 100 * _final(study, space, ev, scored, trials - Rescore(
        top).trainings, top, strategy).worth, 4) for top in tops}
    keys = Counter(t.key for t in scored)
    return {"curve": curve, "final": finals[str(tops[0])], "finals": finals,
            "seconds": round(seconds, 3),
            "oracle": round(best - 100 * max(t.worth for t in scored), 4),
            "trained_twice": sum(n - 1 for n in keys.values()),
            "over_budget": sum(not ev.limits.fits(searchspace.Cost(t.madds, t.params, ()))
                               for t in scored)}


def _final(study: optuna.Study, space: searchspace.SearchSpace, ev: NBMacroTable,
           scored: list[Record], searched: int, top: int, strategy: str) -> Record:
    """The final choice of a search of ``searched`` networks and ``top`` rescored: its first
    trials copied into a fresh study, then ``nas.rescore`` as ``nas search`` runs it."""
    if top < 2:
        return max(scored[:searched], key=lambda t: (t.values[0], -t.madds))
    last = scored[min(searched, len(scored)) - 1].number
    copy = optuna.create_study(storage=optuna.storages.InMemoryStorage(),
                               directions=study.directions)
    copy.add_trials([t for t in study.get_trials(deepcopy=False) if t.number <= last])
    rescore(copy, space, ev.evaluate, Rescore(top), strategy)
    return choose(records(copy)).record


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def run_all(jobs: list[tuple], processes: int) -> list[dict]:
    import multiprocessing as mp
    import sys

    done: dict[int, dict] = {}
    with mp.get_context("spawn").Pool(max(1, processes), initializer=_one_thread) as pool:
        for i, r in pool.imap_unordered(_indexed, list(enumerate(jobs)), chunksize=2):
            done[i] = r
            if len(done) % 50 == 0 or len(done) == len(jobs):
                print(f"{len(done)}/{len(jobs)} searches", file=sys.stderr, flush=True)
    return [done[i] for i in range(len(jobs))]


def _indexed(item: tuple[int, tuple]) -> tuple[int, dict]:
    return item[0], one_search(item[1])


def summary(runs: list[dict], trials: int) -> dict:
    """Mean and sd of the regret at each mark and of the final choice; shares found."""
    out = {}
    for m in (*[m for m in MARKS if m <= trials], "final", "oracle"):
        values = [r[m] if isinstance(m, str) else r["curve"][min(m, len(r["curve"])) - 1]
                  for r in runs]
        out[str(m)] = {"mean": statistics.fmean(values),
                       "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
                       "found": sum(v <= 1e-6 for v in values) / len(values)}
    for top in runs[0]["finals"]:
        values = [r["finals"][top] for r in runs]
        out[f"final {top}"] = {"mean": statistics.fmean(values),
                               "found": sum(v <= 1e-6 for v in values) / len(values)}
    out["trained_twice"] = sum(r["trained_twice"] for r in runs)
    out["over_budget"] = sum(r["over_budget"] for r in runs)
    out["seconds"] = statistics.fmean(r["seconds"] for r in runs)
    return out


def _variants(args) -> list[tuple[str, int]]:
    """(strategy, screen k) pairs: each strategy, and screened when --screen > 1."""
    names = args.strategies.split(",")
    screened = args.screened.split(",") if args.screened else names
    return [(s, 1) for s in names] + ([(s, args.screen) for s in screened]
                                      if args.screen > 1 else [])


def _label(strategy: str, k: int, by: str) -> str:
    return strategy if k == 1 else f"{strategy} --screen {k} --screen-by {by}"


def run(args) -> dict:
    """Every (variant, budget, seed) search; prints the table and returns the results."""
    budgets = args.budgets.split(",")
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    tops = tuple(int(t) for t in str(args.rescore).split(","))
    jobs = [(s, k, args.by, b, seed, args.trials, tops, args.data)
            for b in budgets for s, k in _variants(args) for seed in seeds]
    start = time.perf_counter()
    done = run_all(jobs, args.jobs)
    results: dict = {}
    for job, r in zip(jobs, done):
        results.setdefault(job[3], {}).setdefault(_label(*job[:3]), []).append(r)
    tables = {b: {v: summary(runs, args.trials) for v, runs in by_v.items()}
              for b, by_v in results.items()}
    text = render(tables, args)
    print(text)
    print(f"\n{len(jobs)} searches in {(time.perf_counter() - start) / 60:.1f} min")
    return {"tables": tables, "results": results, "text": text,
            "minutes": (time.perf_counter() - start) / 60}


def render(tables: dict, args) -> str:
    """One markdown table per budget."""
    marks = [str(m) for m in MARKS if m <= args.trials]
    top = int(str(args.rescore).split(",")[0])
    out = []
    for budget, rows in tables.items():
        ev = _table(args.data, budget)
        best = ev.best_within(ev.limits)
        out += [f"### budget {budget}: best inside it {best.mean:.2f}% "
                f"(`{best.arch}`)", "",
                "| strategy | " + " | ".join(f"regret @ {m}" for m in marks)
                + f" | final ({args.trials - 2 * top} + {top} rescored) "
                "| found best: final | found best @ 100 | oracle regret | trained twice "
                "| s per search |",
                "|---|" + "---:|" * (len(marks) + 6)]
        for name, s in rows.items():
            cells = [f"{s[m]['mean']:.3f} +- {s[m]['sd']:.3f}" for m in marks]
            out.append(f"| {name} | " + " | ".join(cells) + f" | **{s['final']['mean']:.3f}"
                       f" +- {s['final']['sd']:.3f}** | {s['final']['found']:.0%} | "
                       f"{s[marks[-1]]['found']:.0%} | {s['oracle']['mean']:.3f} | "
                       f"{s['trained_twice']} | {s['seconds']:.1f} |")
        others = [k for k in next(iter(rows.values())) if k.startswith("final ")]
        if len(others) > 1:
            out += ["", "final regret by networks rescored: " + "; ".join(
                f"{name}: " + ", ".join(f"{k[6:]} {s[k]['mean']:.3f}" for k in others)
                for name, s in rows.items())]
        out.append("")
    return "\n".join(out)


def main(args) -> None:
    """`strategies.py --space nbmacro`: the tables, and with --out the JSON, markdown, plot."""
    got = run(args)
    if args.out:
        from nbmacro_report import write

        write(Path(args.out), got, args)
