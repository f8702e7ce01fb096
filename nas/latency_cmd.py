"""`nas latency-table`: measure, on the machine it runs on, the kernels of the networks a
search will meet, and fit how they add up to a network's time."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from tqdm import tqdm

import searchspace
from nas import flags
from nas.errors import UserError
from nas.genotypes import resolve_genotype
from nas.paths import check_writable
from searchspace.latency import LatencyTable, Predictor, default_table, machine, predictor_for
from searchspace.latency_measure import check_device
from searchspace.latency_networks import calibration_networks
from searchspace.latency_table import StaleTable

__all__ = ["register", "fit_errors", "prepare", "latency_figures", "latency_text", "ms"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add `nas latency-table` to the CLI."""
    s = sub.add_parser("latency-table", help="measure this machine's latency table (for "
                       "--budget 4ms-latency@TABLE)")
    s.add_argument("-o", "--output", help="the table file (added to when it exists; default: "
                   "this machine's own table for these settings: at 1 thread and batch 1, the "
                   "one `--budget 4ms-latency` uses)")
    s.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default: cpu)")
    s.add_argument("--threads", type=flags.number(1, 1024, int), default=1,
                   help="intra-op threads, as deployed (default: 1)")
    s.add_argument("--batch", type=flags.number(1, 4096, int), default=1,
                   help="images a forward pass (default: 1)")
    s.add_argument("--samples", type=flags.number(0, 10_000, int), default=10,
                   help="random networks of each search space (default: 10)")
    s.add_argument("--zoo", nargs="*", default=None, metavar="NAME",
                   help="zoo networks to measure (default: all under 1.5G multiply-adds)")
    s.add_argument("--genotype", nargs="+", default=[], metavar="G",
                   help="networks a search elsewhere will meet: zoo names, YAML files, runs")
    s.add_argument("--rounds", type=flags.number(1, 100, int), default=5,
                   help="end-to-end timings of each network (at least), each beside the "
                   "reference workload; the median kept (default: 5)")
    s.add_argument("--json", action="store_true", help="print one JSON line")
    s.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> None:
    path = Path(args.output) if args.output else default_table(args.device, args.threads,
                                                               args.batch)
    check_writable(path)
    here = machine(args.device, args.threads, args.batch)
    table = _existing(path) or LatencyTable(here, path=path)
    if not table.same_machine(here):
        raise UserError(f"{path} was measured on {table.describe()}, not on this machine "
                        f"({LatencyTable(here).describe()}): give another -o")
    nets = calibration_networks(args.samples, zoo_names=args.zoo)
    nets += [resolve_genotype(g) for g in args.genotype]
    if not nets:
        raise UserError("no networks to measure: give --samples, --zoo or --genotype")
    before, start = len(table.kernels), time.time()
    print(f"measuring {len(nets)} networks on {table.describe()} into {path}", file=sys.stderr)
    with tqdm(desc="kernels and networks timed", unit=" timings", file=sys.stderr,
              disable=None) as bar:
        Predictor(table, measure_here=True, device=check_device(args.device)).calibrate(
            nets, args.rounds, bar.update)
    errors = fit_errors(table)
    summary = {"table": str(path), "kernels": len(table.kernels),
               "new_kernels": len(table.kernels) - before, "networks": len(table.calibration),
               "fit_mape": round(statistics.fmean(abs(e) for e in errors), 4),
               "fit_within_10pct": round(sum(abs(e) <= 0.1 for e in errors) / len(errors), 4),
               "factors": table.factors, "seconds": round(time.time() - start, 1)}
    print(f"{summary['new_kernels']} new kernels ({summary['kernels']} in all), "
          f"{summary['networks']} networks timed end to end in {summary['seconds']:.0f} s; "
          f"the fit's error on them: {100 * summary['fit_mape']:.1f}% on average, "
          f"{100 * summary['fit_within_10pct']:.0f}% within +-10%; written to {path}",
          file=sys.stderr)
    if args.json:
        print(json.dumps(summary))


def _existing(path: Path) -> LatencyTable | None:
    """The table at ``path`` to add to; None where there is none, or where it is of an older
    format or another reference workload (its times cannot be mixed with new ones)."""
    if not path.exists():
        return None
    try:
        return LatencyTable.load(path)
    except StaleTable as exc:
        print(f"{exc}: measuring it again from scratch", file=sys.stderr)
        return None


def fit_errors(table: LatencyTable) -> list[float]:
    """(predicted - measured) / measured of each calibration network, by the fitted factors."""
    f = table.factors
    return [(f.get("fixed_ms", 0.0) + sum(f.get(k, 1.0) * v for k, v in c["sums"].items())
             - c["measured_ms"]) / c["measured_ms"] for c in table.calibration]


def prepare(target: str) -> Predictor:
    """The predictor of a latency target ("cpu", "cuda[:N]" or a table file), opened before
    any work: this machine's table is measured first when it is new (about 2.5 minutes on a
    2-core CPU, with progress), and a bad table fails here, in one line."""
    return predictor_for(target, calibrate=_calibrate_loudly)


def _calibrate_loudly(p: Predictor) -> None:
    nets = calibration_networks()
    print(f"measuring this machine's latency table once ({len(nets)} networks on "
          f"{p.table.describe()}; minutes), kept in {p.table.path}", file=sys.stderr)
    with tqdm(desc="kernels and networks timed", unit=" timings", file=sys.stderr,
              disable=None) as bar:
        p.calibrate(nets, progress=bar.update)


def latency_figures(g: searchspace.Genotype, target: str) -> dict:
    """``g``'s predicted latency on ``target`` and, where the table is this machine's, its
    measured one (as the table counts time: ``Predictor.measure``), for reports."""
    p = prepare(target)
    out = {"predicted_ms": round(p.predict(g), 4), "measured_ms": None,
           "on": p.table.describe()}
    if p.measure_here:
        out["measured_ms"] = round(p.measure([g])[0].ms, 4)
    return out


def latency_text(figures: dict, budget_ms: float | None = None) -> str:
    """One phrase: "3.9 ms predicted, 3.8 ms measured (budget 4 ms; <machine>)"."""
    measured = (f", {ms(figures['measured_ms'])} measured" if figures["measured_ms"]
                is not None else ", not measured (another machine's table)")
    budget = f"budget {ms(budget_ms)}; " if budget_ms else ""
    return f"{ms(figures['predicted_ms'])} predicted{measured} ({budget}{figures['on']})"


def ms(value: float) -> str:
    """Milliseconds as a report writes them: 0.41 ms, 3.00 ms, 41.2 ms, 412 ms."""
    return f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms" if value < 100 else \
        f"{value:.0f} ms"
