"""How well a proxy ranks networks: a published table's networks scored by it, against the table.

    python benchmarks/fidelity.py --space nb201 --profile proxy-cpu --cells 30
    python benchmarks/fidelity.py --space nbmacro --profile proxy-cpu --cells 30
    python benchmarks/fidelity.py --space nbmacro --zero-cost --cells 300
    python benchmarks/fidelity.py --space nb201 --profile proxy-cpu --set resolution=16 --cells 30
    python benchmarks/fidelity.py --space nb201 --zero-cost --cells 200
      [--data ../shared/data/cifar10-jpeg.tar.gz] [--table ../shared/data/nb201]
      [--seed 0] [--out results/nb201]

The sample: the table's networks (NAS-Bench-201's 15,625 cells by ``valid_acc_200ep``; or
NAS-Bench-Macro's 3,969 networks by their mean accuracy) sorted, cut into ``--cells`` bins of
equal count, one cell drawn at random from each (seeded): a random sample that keeps
the population's spread of accuracies (its ~2% of disconnected cells included) with less
luck in it than a plain draw. ``--profile`` trains each cell by that recipe (``--set
key=value`` changes a field) and scores it on our validation images; ``--zero-cost`` scores
each by every zero-cost proxy, the cost counter's multiply-adds and parameters, and rank
votes of them. Prints Kendall's tau and Spearman's rho against the table with the seconds
per cell; ``--out`` keeps one JSON per run there and rewrites ``fidelity.md`` from all of them.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import random
import statistics
import sys
import time
from pathlib import Path

import torch

import evaluators
from evaluators.recipe import apply_sets as _apply_sets
from evaluators.zero_cost import PROXIES, TRIVIAL, ZeroCost, kendall_tau, spearman_rho, vote
from nas.report_table import table
from bench_tables import TABLE_DIRS, population, sample

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
# published fidelity on NAS-Bench-201 CIFAR-10 (all cells; see shared/data/nb201/README)
PUBLISHED = [("reduced training (EcoNAS-style)", "", "~0.6"), ("synflow", "", "0.74"),
             ("NASWOT", "0.57", ""), ("AZ-NAS", "0.74", "0.91")]


def sample_cells(n: int, seed: int, table_path: str | Path, space: str = "nb201") -> list:
    """``n`` networks (name, genotype, truth), one from each of ``n`` equal-count bins."""
    return sample(space, n, seed, table_path)


def _environment() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    return f"CPU ({platform.machine()}, {torch.get_num_threads()} threads), torch " \
           f"{torch.__version__}"


def _tag(args: argparse.Namespace) -> str:
    tag = args.name or ("zero-cost" if args.zero_cost else
                        "-".join([args.profile or "merged", *args.set]).replace("=", ""))
    return tag if args.shard == "0/1" else f"{tag}-shard{args.shard.replace('/', 'of')}"


def _recipe_name(profile: str, sets: list[str]) -> str:
    return profile + "".join(f" {s}" for s in sets)


def apply_sets(recipe, sets: list[str]):
    """``--set KEY=VALUE`` changes, typed and range-checked by the recipe (RecipeError)."""
    return _apply_sets(recipe, sets)


def trained(cells: list, args: argparse.Namespace) -> dict:
    ev = evaluators.make(args.profile, data=args.data)
    ev.recipe = apply_sets(ev.recipe, args.set)
    ev.load()
    truth, scores, seconds, params, madds, failed = [], [], [], [], [], []
    for k, (arch, g, val) in enumerate(cells, 1):
        start = time.perf_counter()
        r = ev.evaluate(g, seed=args.seed)
        wall = time.perf_counter() - start
        if r.status != "ok":
            failed.append({"arch": arch, "reason": r.reason})
        else:
            truth.append(val)
            scores.append(r.accuracy)
            seconds.append(wall)
            params.append(r.params)
            madds.append(r.madds)
        print(f"[{k}/{len(cells)}] table {val:.2f}  proxy "
              f"{'-' if r.accuracy is None else f'{100 * r.accuracy:.2f}'}  {wall:.1f}s  "
              f"{r.images_per_s:,.0f} img/s {r.reason}", file=sys.stderr, flush=True)
        if args.out:  # what a run cut short leaves: the cells scored so far
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / f"partial-{_tag(args)}.json").write_text(json.dumps(
                {"truth": truth, "score": scores, "seconds": seconds, "params": params,
                 "madds": madds, "failed": failed, "recipe": vars(ev.recipe),
                 "environment": _environment(), "cells": [c[0] for c in cells[:k]]}))
    name = _recipe_name(args.profile, args.set)
    per_cell = {"truth": truth, "score": scores, "seconds": seconds, "params": params,
                "madds": madds}
    return {"kind": "trained", "recipe": vars(ev.recipe), "cells": [c[0] for c in cells],
            "results": trained_rows(name, per_cell, failed), "per_cell": per_cell}


def merged(files: list[Path]) -> dict:
    """One trained run from the JSON of its shards (finished, or partial when cut short)."""
    per_cell = {"truth": [], "score": [], "seconds": [], "params": [], "madds": []}
    failed, cells, recipe, environment = [], [], None, ""
    for f in files:
        d = json.loads(f.read_text())
        part = d.get("per_cell", d)
        for k in per_cell:
            per_cell[k] += part.get(k, [])  # older runs kept no multiply-adds
        failed += d.get("failed", d.get("results", [{}])[0].get("failures", []))
        cells += d.get("cells", [])[:len(part["truth"]) + len(d.get("failed", []))]
        recipe = d["recipe"]
        environment = d.get("environment", "")
    name = recipe["name"] + "".join(f" {k}={recipe[k]:g}" for k in ("epochs", "lr", "ema"))
    return {"kind": "trained", "recipe": recipe, "cells": cells, "per_cell": per_cell,
            "results": trained_rows(name, per_cell, failed), "environment": environment}


def trained_rows(name: str, per_cell: dict, failed: list) -> list[dict]:
    """The trained score's row, the parameter count's (and multiply-adds') on the same cells,
    and the vote of the first two."""
    cells = [{"trained": a, "params": p} for a, p in zip(per_cell["score"], per_cell["params"])]
    both = vote(cells, ["trained", "params"]).tolist()
    zero = [0.0] * len(cells)
    return [_row(name, per_cell["truth"], per_cell["score"], per_cell["seconds"], failed),
            _row("params (the same cells)", per_cell["truth"], per_cell["params"], zero),
            _row("vote(trained+params)", per_cell["truth"], both, per_cell["seconds"], failed)
            ] + ([_row("madds (the same cells)", per_cell["truth"], per_cell["madds"], zero)]
                 if len(per_cell.get("madds", [])) == len(cells) else [])


def zero_cost(cells: list, args: argparse.Namespace) -> dict:
    zc = ZeroCost(args.data, seed=args.seed)
    names = [*PROXIES, *TRIVIAL]
    per_cell = []
    for k, (_, g, val) in enumerate(cells, 1):
        s: dict[str, float] = {}
        for name in names:  # each timed alone
            one = zc.score(g, [name])
            s[name], s[f"{name}_s"] = one[name], one["seconds"]
        s["truth"] = val
        per_cell.append(s)
        if k % 10 == 0 or k == len(cells):
            print(f"[{k}/{len(cells)}] " + "  ".join(f"{n} {s[n]:.3g}" for n in names),
                  file=sys.stderr, flush=True)
    truth = [s["truth"] for s in per_cell]
    results = [_row(n, truth, [s[n] for s in per_cell], [s[f"{n}_s"] for s in per_cell])
               for n in names]
    for size in (2, 3, 4):  # rank votes of the proxies (the trivial ones included)
        for combo in itertools.combinations(names, size):
            score = vote(per_cell, combo).tolist()
            secs = [sum(s[f"{n}_s"] for n in combo) for s in per_cell]
            results.append(_row("vote(" + "+".join(combo) + ")", truth, score, secs))
    best_votes = sorted((r for r in results if r["score"].startswith("vote(")),
                        key=lambda r: -r["tau"])[:5]
    results = [r for r in results if not r["score"].startswith("vote(")] + best_votes
    return {"kind": "zero-cost", "results": results, "cells": [c[0] for c in cells],
            "per_cell": per_cell}


def _row(name: str, truth: list, score: list, seconds: list, failed: list | None = None
         ) -> dict:
    return {"score": name, "tau": kendall_tau(score, truth), "rho": spearman_rho(score, truth),
            "seconds_per_cell": statistics.mean(seconds) if seconds else 0.0,
            "cells": len(truth), "failed": len(failed or []), "failures": failed or []}


def _print(results: list[dict]) -> None:
    print(table(("score", "Kendall tau", "Spearman rho", "s/cell", "cells", "failed"),
                [(r["score"], f"{r['tau']:.3f}", f"{r['rho']:.3f}",
                  f"{r['seconds_per_cell']:.2f}", r["cells"], r["failed"]) for r in results],
                right={1, 2, 3, 4, 5}))


_INTRO = {
    "nb201": ("NAS-Bench-201",
              "Each proxy scores a sample of NAS-Bench-201 cells; the figures are its rank "
              "correlation with the table's 200-epoch validation accuracy (`valid_acc_200ep`). "
              "Sample: the 15,625 cells sorted by that accuracy, cut into as many equal-count "
              "bins as cells, one drawn at random from each (seeded). Written by "
              "`benchmarks/fidelity.py`; each section gives its command."),
    "nbmacro": ("NAS-Bench-Macro",
                "Each proxy scores a sample of NAS-Bench-Macro's 3,969 networks (MobileNetV2 "
                "blocks of varying depth, 7.7M to 105.7M multiply-adds); the figures are its "
                "rank correlation with the mean test accuracy of the benchmark's three "
                "50-epoch trainings. Sample: the networks sorted by that mean, cut into as "
                "many equal-count bins as networks, one drawn at random from each (seeded). "
                "Written by `benchmarks/fidelity.py --space nbmacro`; each section gives its "
                "command."),
}


def costs_on_all(space: str, table: str) -> list[dict]:
    """The parameter and multiply-add counts' rank correlations over every network."""
    rows = population(space, table)
    truth = [r[2] for r in rows]
    return [_row(f"{name} (all {len(rows):,} networks)", truth, [r[i] for r in rows], [0.0])
            for name, i in (("params", 3), ("madds", 4))]


def write_markdown(folder: Path) -> Path:
    """fidelity.md from every fidelity-*.json in ``folder``."""
    runs = [json.loads(p.read_text()) for p in sorted(folder.glob("fidelity-*.json"))]
    space = runs[0].get("space", "nb201") if runs else "nb201"
    lines = [f"# Proxy fidelity on {_INTRO[space][0]} (CIFAR-10)", "", _INTRO[space][1], ""]
    for run in runs:
        lines += [f"## {run['title']}", "", f"`{run['command']}`", "",
                  f"{run['cells_n']} cells, seed {run['seed']}; {run['environment']}; "
                  f"{run['date']}.", "",
                  "| score | Kendall tau | Spearman rho | seconds per cell | cells | failed |",
                  "|---|---:|---:|---:|---:|---:|"]
        for r in run["results"]:
            lines.append(f"| {r['score']} | {r['tau']:.3f} | {r['rho']:.3f} | "
                         f"{r['seconds_per_cell']:.2f} | {r['cells']} | {r['failed']} |")
        lines += ["", *run.get("notes", []), ""] if run.get("notes") else [""]
    if space == "nb201":  # the published figures are NAS-Bench-201's
        lines += ["## Published, on the same benchmark (all cells)", "",
                  "| proxy | Kendall tau | Spearman rho |", "|---|---:|---:|"]
        lines += [f"| {n} | {t or '-'} | {r or '-'} |" for n, t, r in PUBLISHED]
    path = folder / "fidelity.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--space", default="nb201", choices=sorted(TABLE_DIRS))
    p.add_argument("--profile", help="train each cell by this profile (name or YAML path)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="change a field of the profile (repeatable)")
    p.add_argument("--zero-cost", action="store_true", help="score by the zero-cost proxies")
    p.add_argument("--cells", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default=str(SHARED / "cifar10-jpeg.tar.gz"))
    p.add_argument("--table", help="the table's file or folder (default: shared/data/SPACE)")
    p.add_argument("--out", type=Path, help="folder for the JSON and fidelity.md")
    p.add_argument("--name", help="the file name's tag under --out (default from the options)")
    p.add_argument("--shard", default="0/1", metavar="I/N",
                   help="score every N-th cell from the I-th (runs side by side on one GPU)")
    p.add_argument("--note", action="append", default=[], help="a line under the run's table")
    p.add_argument("--merge", nargs="+", type=Path, metavar="JSON",
                   help="join the fidelity-*.json / partial-*.json of a run's shards")
    args = p.parse_args()
    if not args.merge and bool(args.profile) == args.zero_cost:
        p.error("give --profile P, --zero-cost or --merge")
    args.table = args.table or str(TABLE_DIRS[args.space])
    cells = sample_cells(args.cells, args.seed, args.table, args.space)
    i, n = (int(v) for v in args.shard.split("/"))
    cells = cells[i::n]
    start = time.perf_counter()
    if args.merge:
        run = merged(args.merge)
    else:
        run = zero_cost(cells, args) if args.zero_cost else trained(cells, args)
    shown = [a for i, a in enumerate(sys.argv[1:])  # the command, less its notes
             if a != "--note" and (i == 0 or sys.argv[i] != "--note")]
    run.update(command="python benchmarks/fidelity.py " + " ".join(shown),
               title=("zero-cost proxies" if args.zero_cost else
                      f"trained: {run['results'][0]['score']}" if args.merge else
                      f"trained: {_recipe_name(args.profile, args.set)}"),
               cells_n=args.cells if args.merge else len(cells), seed=args.seed,
               minutes=(time.perf_counter() - start) / 60,
               environment=run.get("environment") or _environment(),
               date=time.strftime("%Y-%m-%d"), notes=args.note)
    if not args.merge:
        run["results"] += costs_on_all(args.space, args.table)
    run["space"] = args.space
    _print(run["results"])
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"fidelity-{_tag(args)}.json").write_text(json.dumps(run, indent=1))
        (args.out / f"partial-{_tag(args)}.json").unlink(missing_ok=True)
        print(f"wrote {write_markdown(args.out)}", file=sys.stderr)


if __name__ == "__main__":
    main()
