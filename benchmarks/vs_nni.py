"""Our strategies against NNI's own, side by side, through the same search loop (needs the nni
extra: pip install -e '.[nni]').

    python benchmarks/vs_nni.py [--seeds 100] [--trials 100] [--jobs 2] [--out results/vs-nni]
    python benchmarks/vs_nni.py --proxy [--trials 20] [--set train_subset=2000] [--seeds 1]

The first form is NAS-Bench-201's protocol (as ``benchmarks/strategies.py --space nb201``):
each search scores ``--trials`` distinct cells by the table's 200-epoch validation accuracy,
and the table gives the best found (mean and standard error over seeds), the proposals that
repeated a scored cell, and seconds per search. ``--proxy`` trains every cell for real by
``proxy-cpu`` (``--set`` changes its recipe) and reports the table's accuracy of the cell each
search picked. ``--out`` writes vs-nni.md, vs-nni.json and curves.png.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import optuna  # noqa: E402
from fidelity import _recipe_name, apply_sets  # noqa: E402
from strategies import OPTIMUM, PUBLISHED, nb201_searches  # noqa: E402

import evaluators  # noqa: E402
import searchspace  # noqa: E402
from evaluators.table import NB201Table  # noqa: E402
from nas.report_table import table  # noqa: E402
from nas.loop import Stop, run_worker  # noqa: E402
from nas.trial import Status, records  # noqa: E402

PAIRS = [("evolution", "nni:evolution"), ("rl", "nni:rl"), ("tpe", "nni:tpe"),
         ("random", "nni:random")]
ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT.parent / "shared" / "data" / "nb201"

def _mean_se(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return statistics.mean(values), 0.0
    return statistics.mean(values), statistics.stdev(values) / math.sqrt(len(values))


def run_table(args: argparse.Namespace) -> tuple[dict, list, tuple, str]:
    NB201Table(args.data).load()  # a missing table fails here, in one line
    names = [n for pair in PAIRS for n in pair]
    jobs = [(n, s, args.trials, args.data) for n in names for s in range(args.seeds)]
    done = nb201_searches(jobs, args.jobs)
    results = {n: [r for job, r in zip(jobs, done) if job[0] == n] for n in names}
    rows = []
    for ours, nni in PAIRS:
        cells = []
        for name in (ours, nni):
            mean, se = _mean_se([r["curve"][-1] for r in results[name]])
            cells.append(f"{mean:.2f} +- {se:.2f}")
        a = [r["curve"][-1] for r in results[ours]]
        b = [r["curve"][-1] for r in results[nni]]
        diff, diff_se = _mean_se([x - y for x, y in zip(a, b)])  # same seeds: paired
        pub = PUBLISHED.get(ours)
        rows.append((ours, *cells, f"{diff:+.2f} +- {diff_se:.2f}",
                     *[f"{statistics.mean(r['reused'] for r in results[n]):.1f}"
                       for n in (ours, nni)],
                     *[f"{statistics.mean(r['seconds'] for r in results[n]):.2f}"
                       for n in (ours, nni)],
                     f"{pub[1]:.2f} ({pub[0]})" if pub else ""))
    header = ("strategy", "ours: best val", "NNI's: best val", "ours - NNI's",
              "ours: repeated", "NNI's: repeated", "ours: s/search", "NNI's: s/search",
              "published @ ~100")
    note = (f"NAS-Bench-201 cifar10-valid: best validation accuracy (%) among {args.trials} "
            f"distinct cells a search, mean +- standard error over {args.seeds} seeds (the "
            "difference paired by seed); 'repeated': proposals of a cell scored already (not "
            f"trained again, not counted). The optimum is {OPTIMUM}. Published: Dong & Yang "
            "2020, Table 5 (12-epoch reward, 500 runs).")
    return results, rows, header, note


def proxy_search(strategy: str, seed: int, args: argparse.Namespace) -> dict:
    """One search that trains every cell by proxy-cpu; the table scores the winner."""
    ev = evaluators.make("proxy-cpu", data=args.cifar)
    ev.recipe = apply_sets(ev.recipe, args.set)
    table_ = NB201Table(args.data)
    storage = optuna.storages.InMemoryStorage()
    start = time.perf_counter()
    run_worker(storage, "bench", searchspace.load_space("nb201"), strategy, seed, ev.evaluate,
               searchspace.Limits(), Stop(trials=args.trials), log=lambda line: None)
    seconds = time.perf_counter() - start
    trials = records(optuna.load_study(study_name="bench", storage=storage))
    scored = [t for t in trials if t.scored]
    best = max(scored, key=lambda t: t.values[0])
    row = table_.row(best.decisions)
    curve, top = [], 0.0
    for t in scored:
        top = max(top, table_.row(t.decisions).val)
        curve.append(top)
    return {"proxy_best": round(100 * best.values[0], 2), "table_val": row.val,
            "table_test": row.test, "best_scored_val": round(top, 2), "curve": curve,
            "seconds": round(seconds, 1), "scored": len(scored),
            "reused": sum(t.status == Status.REUSED for t in trials)}


def run_proxy(args: argparse.Namespace) -> tuple[dict, list, tuple, str]:
    NB201Table(args.data).load()
    names = [n for pair in PAIRS[: args.pairs] for n in pair]
    results = {n: [] for n in names}
    for seed in range(args.seeds):
        for n in names:
            r = proxy_search(n, seed, args)
            results[n].append(r)
            print(f"{n} seed {seed}: proxy {r['proxy_best']:.2f}%, its cell {r['table_val']:.2f}"
                  f"% val / {r['table_test']:.2f}% test after 200 epochs, {r['seconds']:.0f} s",
                  file=sys.stderr, flush=True)
    rows = []
    for n in names:
        runs = results[n]
        rows.append((n, *[f"{statistics.mean(r[k] for r in runs):.2f}"
                          for k in ("proxy_best", "table_val", "table_test", "best_scored_val")],
                     f"{statistics.mean(r['reused'] for r in runs):.1f}",
                     f"{statistics.mean(r['seconds'] for r in runs):.0f}"))
    header = ("strategy", "winner's proxy acc", "winner's 200-epoch val", "winner's test",
              "best 200-epoch val scored", "repeated", "s/search")
    note = (f"NAS-Bench-201 cells trained for real by {_recipe_name('proxy-cpu', args.set)}, "
            f"{args.trials} cells a search, {args.seeds} seed(s): the winner is the cell with "
            "the best proxy accuracy; the table gives its accuracy after the benchmark's 200 "
            "epochs (val: the figure NAS-Bench-201 searches use; test: held out).")
    return results, rows, header, note


def _write(out: Path, results: dict, header: tuple, rows: list, note: str, command: str,
           proxy: bool, jobs: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import torch

    out.mkdir(parents=True, exist_ok=True)
    threads = f"{jobs} processes, 1 torch thread each" if jobs > 1 and not proxy else \
        f"{torch.get_num_threads()} threads"
    env = (f"CPU ({platform.machine()}, {threads}); torch "
           f"{torch.__version__}, optuna {optuna.__version__}, nni 3.0, Python "
           f"{platform.python_version()}")
    stem = "vs-nni-proxy" if proxy else "vs-nni"
    summary = {n: {k: [r[k] for r in runs] for k in runs[0] if k != "curve"}
               for n, runs in results.items()}
    (out / f"{stem}.json").write_text(json.dumps(
        {"command": command, "environment": env, "results": summary}, indent=1) + "\n")
    md = [f"# Ours against NNI's strategies{' (real training)' if proxy else ''}", "",
          f"`{command}`", "", f"- {env}", f"- date: {time.strftime('%Y-%m-%d')}", "",
          "| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    md += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    md += ["", note, "", f"![best-so-far curves]({stem}.png)", ""]
    (out / f"{stem}.md").write_text("\n".join(md))
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    for i, (ours, nni) in enumerate(PAIRS):
        for name, style in ((ours, "-"), (nni, "--")):
            if name not in results:
                continue
            n = min(len(r["curve"]) for r in results[name])
            curves = np.array([r["curve"][:n] for r in results[name]])
            x = np.arange(1, n + 1)
            ax.plot(x, curves.mean(0), color=f"C{i}", ls=style, lw=2 if style == "-" else 1.5,
                    label=name if style == "-" else f"{name} (NNI 3.0)")
    ax.axhline(OPTIMUM, color="0.3", ls=":", lw=1, label=f"optimum {OPTIMUM}")
    if not proxy:
        ax.set_ylim(89.5, 91.8)
    ax.set_xlabel("cells scored")
    ax.set_ylabel("best 200-epoch validation accuracy so far (%)")
    seeds = len(next(iter(results.values())))
    ax.set_title(f"NAS-Bench-201 (CIFAR-10 valid), mean over {seeds} seed(s): ours solid, "
                 "NNI's dashed", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(out / f"{stem}.png", dpi=120)
    plt.close(fig)
    print(f"wrote {out / (stem + '.md')}, {out / (stem + '.json')}, {out / (stem + '.png')}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, help="searches per strategy (default 100; --proxy 1)")
    p.add_argument("--trials", type=int, help="cells a search (default 100; --proxy 20)")
    p.add_argument("--jobs", type=int, default=2, help="processes for the table searches")
    p.add_argument("--data", default=str(TABLE), help="NAS-Bench-201's table")
    p.add_argument("--proxy", action="store_true", help="train every cell by proxy-cpu")
    p.add_argument("--pairs", type=int, default=1,
                   help="--proxy: how many strategy pairs, in the order evolution, rl, tpe, "
                        "random (default 1)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="--proxy: change proxy-cpu's recipe, e.g. train_subset=2000")
    p.add_argument("--cifar", help="--proxy: CIFAR-10 source (default: $NAS_DATA, the cache)")
    p.add_argument("--out", help="write the table, JSON and plot into this folder")
    args = p.parse_args()
    args.seeds = args.seeds or (1 if args.proxy else 100)
    args.trials = args.trials or (20 if args.proxy else 100)
    try:
        from nas.strategies import require_nni

        require_nni()
    except Exception as exc:
        sys.exit(f"vs_nni: {exc}")
    runner = run_proxy if args.proxy else run_table
    results, rows, header, note = runner(args)
    print(table(header, rows, right=set(range(1, len(header)))) + "\n\n" + note)
    if args.out:
        flags = (f" --proxy --pairs {args.pairs}" + "".join(f" --set {s}" for s in args.set)
                 + (f" --cifar {args.cifar}" if args.cifar else "")
                 if args.proxy else f" --jobs {args.jobs}")
        command = (f"python benchmarks/vs_nni.py --seeds {args.seeds} --trials {args.trials}"
                   f"{flags} --out {args.out}")
        _write(Path(args.out), results, header, rows, note, command, args.proxy, args.jobs)


if __name__ == "__main__":
    main()
