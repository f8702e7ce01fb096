"""Zero-cost screening on NAS-Bench-201: the best cell found at an equal number of trained
(table-scored) cells, with and without ``--screen K``.

    python benchmarks/screening.py [--strategies random,evolution,rl,tpe] [--seeds 20]
        [--trials 100] [--screen 10] [--by vote:synflow+params] [--jobs 2]
        [--images ../shared/data/cifar10-jpeg.tar.gz] [--out results/nb201]

Each search trains ``--trials`` distinct cells (the table's 200-epoch validation accuracy
stands in for training); with screening, each trial's cell is the best of up to ``--screen``
new proposals of the strategy by the zero-cost score ``--by``, computed on real CIFAR-10
images. Reports the mean best validation accuracy found (mean +- sd over seeds), how many
seeds screening won, and the zero-cost scoring time a search spent.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from strategies import OPTIMUM, nb201_search

import searchspace
from evaluators.table import NB201Table
from nas.report_table import table
from nas.screen import DEFAULT_BY, zero_cost_screen

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
_STATE: dict = {}


def _one(job: tuple) -> dict:
    """One search in a worker process; the table and the screen's score cache live on."""
    strategy, seed, trials, k, by, table_path, images = job
    if "table" not in _STATE:
        _STATE["table"] = NB201Table(table_path)
    screen = None
    if k > 1:
        if (k, by) not in _STATE:
            _STATE[(k, by)] = zero_cost_screen(searchspace.load_space("nb201"), k, by, images)
        screen = _STATE[(k, by)]
        before = screen.pick.seconds, screen.pick.scored
    r = nb201_search(strategy, seed, trials, _STATE["table"], screen)
    if screen is not None:
        r["screen_seconds"] = screen.pick.seconds - before[0]
        r["screen_scored"] = screen.pick.scored - before[1]
    return r


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--strategies", default="random,evolution,rl,tpe")
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--trials", type=int, default=100)
    p.add_argument("--screen", type=int, default=10)
    p.add_argument("--by", default=DEFAULT_BY)
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--table", default=str(SHARED / "nb201"))
    p.add_argument("--images", default=str(SHARED / "cifar10-jpeg.tar.gz"))
    p.add_argument("--out", type=Path, help="write screening.md here")
    args = p.parse_args()
    NB201Table(args.table).load()
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    strategies = args.strategies.split(",")
    jobs = [(st, s, args.trials, k, args.by, args.table, args.images)
            for st in strategies for k in (1, args.screen) for s in seeds]
    start = time.perf_counter()
    if args.jobs > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(args.jobs) as pool:
            done = pool.map(_one, jobs, chunksize=1)
    else:
        done = [_one(job) for job in jobs]
    by_job = {(j[0], j[1], j[3]): r for j, r in zip(jobs, done)}
    rows = []
    for st in strategies:
        plain = [by_job[(st, s, 1)]["curve"][-1] for s in seeds]
        screened = [by_job[(st, s, args.screen)]["curve"][-1] for s in seeds]
        wins = sum(b > a for a, b in zip(plain, screened))
        ties = sum(b == a for a, b in zip(plain, screened))
        secs = statistics.mean(by_job[(st, s, args.screen)]["screen_seconds"] for s in seeds)
        rows.append((st, f"{statistics.mean(plain):.3f} +- {statistics.stdev(plain):.2f}",
                     f"{statistics.mean(screened):.3f} +- {statistics.stdev(screened):.2f}",
                     f"{statistics.mean(screened) - statistics.mean(plain):+.3f}",
                     f"{wins}/{ties}/{len(plain) - wins - ties}", f"{secs:.0f}"))
    header = ("strategy", "best val, no screen", f"best val, --screen {args.screen}",
              "difference", "screen won/tied/lost", "zero-cost s per search")
    text = table(header, rows, right=set(range(1, len(header))))
    note = (f"NAS-Bench-201 cifar10-valid, best validation accuracy (%) among {args.trials} "
            f"trained cells, mean +- sd over seeds {seeds.start}-{seeds.stop - 1}; screening: "
            f"the best of up to {args.screen} proposals a trial by `{args.by}`. "
            f"Optimum {OPTIMUM}. {(time.perf_counter() - start) / 60:.1f} min.")
    print(text + "\n\n" + note)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        cmd = ("python benchmarks/screening.py " +
               f"--strategies {args.strategies} --seeds {args.seeds} --first-seed "
               f"{args.first_seed} --trials {args.trials} --screen {args.screen} --by "
               f"{args.by} --jobs {args.jobs}")
        md = ["# Zero-cost screening on NAS-Bench-201", "", f"`{cmd}`", "",
              f"- date: {time.strftime('%Y-%m-%d')}", "",
              "| " + " | ".join(header) + " |", "|" + "---|" + "---:|" * (len(header) - 1),
              *["| " + " | ".join(map(str, r)) + " |" for r in rows], "", note, ""]
        (args.out / "screening.md").write_text("\n".join(md))
        print(f"wrote {args.out / 'screening.md'}")


if __name__ == "__main__":
    main()
