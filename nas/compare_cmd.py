"""`nas compare`: discovered versus hand-designed networks, trained the same way."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from dataclasses import asdict
from pathlib import Path

import searchspace
from evaluators.recipe import check_device, load_profile
from evaluators.train import EpochLog
from nas.budget import parse_budget
from nas.compare import (
    DEFAULT_BASELINES,
    compare,
    entries_for,
    log_stderr,
    reporting_evaluator,
    write_report,
)
from nas.errors import UserError
from nas.for_data import add_data_flags, data_source, fitted
from nas.genotypes import resolve_genotype
from nas.latency_cmd import latency_figures, prepare
from nas.paths import check_writable
from nas.run_folder import environment
from nas.train_cmd import default_profile

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add `nas compare` to the CLI."""
    s = sub.add_parser("compare", help="train found and hand-designed nets the same way and "
                                       "compare them")
    s.add_argument("genotypes", nargs="*", help="found networks: YAML files or run folders "
                                                "(zoo names count as found too)")
    s.add_argument("--baselines", default=",".join(DEFAULT_BASELINES),
                   help="zoo names, comma-separated ('' for none)")
    s.add_argument("--profile", default=None, help="training recipe (default: proxy-gpu on a "
                                                   "GPU, else proxy-cpu)")
    s.add_argument("--seeds", type=int, default=1, help="trainings per network")
    s.add_argument("--budget", help="also compare every baseline compound-scaled to this")
    add_data_flags(s)
    s.add_argument("-o", "--output", default="compare", help="output folder (default: compare)")
    s.add_argument("--report-only", action="store_true",
                   help="train nothing: write the report from the trainings already done "
                        "(the output folder's cache) and name the missing ones")
    s.add_argument("--json", action="store_true", help="print one final JSON line")
    s.set_defaults(run=_run)


def _every(seconds: float):
    """A progress callback: an epoch line at most every ``seconds`` (a long training is not
    silent, a short one not chatty)."""
    last = [0.0]

    def show(log: EpochLog) -> None:
        if log.epoch == log.epochs or time.monotonic() - last[0] >= seconds:
            last[0] = time.monotonic()
            log_stderr(f"  epoch {log.epoch}/{log.epochs}  loss {log.loss:.3f}  "
                       f"{log.images_per_s:,.0f} img/s  ~{log.eta:.0f}s left")
    return show


def _named(args: argparse.Namespace) -> tuple[list[tuple], list[str]]:
    """(name, genotype, argument) of each found network, and the baselines' names."""
    found = []
    for arg in args.genotypes:
        g = resolve_genotype(arg)
        name = Path(arg).name if Path(arg).is_dir() else g.name or Path(arg).stem
        found.append((name, g, arg))
    baselines = [b.strip() for b in args.baselines.split(",") if b.strip()]
    unknown = [b for b in baselines if b not in searchspace.zoo.names()]
    if unknown:
        raise UserError(f"unknown baseline {unknown[0]!r} "
                        f"(zoo: {', '.join(searchspace.zoo.names())})")
    if not found and not baselines:
        raise UserError("nothing to compare: name a genotype or some --baselines")
    return found, baselines


def _run(args: argparse.Namespace) -> None:
    start = time.time()
    check_writable(args.output, folder=True)
    found, baselines = _named(args)
    if args.seeds < 1:
        raise UserError("--seeds must be at least 1")
    budget = _budget(args.budget)
    recipe = load_profile(args.profile or default_profile())
    check_device(recipe.device, recipe.name)
    data = data_source(args)
    ev = reporting_evaluator(recipe, data)
    info = ev.data_info()  # the images, read now: a data error comes alone, before progress
    built = [(name, *fitted(arg, g, info)) for name, g, arg in found]
    notes = [note for _, _, note in built if note]
    for note in notes:
        log_stderr(note)
    entries = entries_for([(name, g) for name, g, _ in built], baselines,
                          budget.limits if budget else None, args.budget or "", info)
    log_stderr(f"comparing {len(entries)} networks x {args.seeds} seed(s) by {recipe.name} "
               f"on {ev.device}; results cached in {args.output}/cache"
               + ("; training nothing (--report-only)" if args.report_only else ""))
    ev.progress = _every(30.0)
    missing: list[str] = []
    rows = compare(entries, ev, args.seeds, Path(args.output), log=log_stderr,
                   train=not args.report_only, missing=missing)
    if not rows:
        raise UserError(f"nothing trained yet in {args.output}: {len(missing)} training(s) "
                        "missing; run without --report-only")
    if budget and budget.limits.latency_ms is not None:
        _budget_latency(rows, entries, budget.limits.latency_on)
    command = "nas compare " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    write_report(rows, recipe, data, args.seeds, time.time() - start, Path(args.output),
                 environment(), command, missing, info, notes)
    best = max(rows, key=lambda r: r.accuracy)
    log_stderr(f"wrote {args.output}/report.md, pareto.png, params.png, results.json; "
               f"most accurate: {best.name} ({100 * best.accuracy:.2f}%)"
               + (f"; {len(missing)} training(s) not done yet" if missing else ""))
    if args.json:
        keep = ("name", "madds", "params", "accuracy", "accuracy_std", "seconds", "latency_ms",
                "pareto", "discovered", "resolution")
        print(json.dumps({"rows": [{k: asdict(r)[k] for k in keep} for r in rows]}))


def _budget(text: str | None):
    """The parsed --budget; its latency table opened first (a bad one fails here, a new one
    of this machine is measured)."""
    budget = parse_budget(text) if text else None
    if budget and budget.limits.latency_ms is not None:
        prepare(budget.limits.latency_on)
    return budget


def _budget_latency(rows: list, entries: list, target: str) -> None:
    """Each row's latency by the budget's table: predicted, and measured where the table is
    this machine's (``budget_predicted`` and ``budget_measured`` ms)."""
    by_name = {e.name: e.genotype for e in entries}
    for row in rows:
        if row.name in by_name:
            figures = latency_figures(by_name[row.name], target)
            row.latency_ms["budget_predicted"] = figures["predicted_ms"]
            if figures["measured_ms"] is not None:
                row.latency_ms["budget_measured"] = figures["measured_ms"]
