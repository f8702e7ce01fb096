"""How well the latency table predicts a network's measured latency (nn-Meter's measure:
the mean absolute percentage error and the share of networks within +-10%).

A fresh table is made on this machine and calibrated as `nas latency-table` does (the zoo as
it is, 1.5x as wide and at 56 pixels, and ``--calibrate`` random networks of each space,
seeds 0..); it then predicts networks it was not fitted on, measuring their kernels as a
search does: ``--n`` random `cells` networks (seeds from ``--first-seed``), and the zoo at
24, 40, 48 and 64 pixels and at half and double width. The fit's settings were chosen on
seeds from 10,000; the published run uses seeds from 20,000.

Each network is measured end to end right after its prediction, as the table counts time
(``Predictor.measure``: the median over at least ``--rounds`` rounds and 2 s of its ratio
to the reference workload timed beside it, times the reference's quiet time): so the
kernels and the network are timed in the same minute, and the comparison is of the method,
not of how the machine changed between. Once all are predicted, each is measured again
the same way: how often the two measurements agree within +-10% says how much of the
error is the machine's. The best raw times are compared too (what a stopwatch says).

    python benchmarks/latency_accuracy.py [--n 120] [--threads 1] [--out results/latency]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
from tqdm import tqdm

import searchspace
from nas.report_table import table
from searchspace.latency import LatencyTable, Predictor, Timing, machine
from searchspace.latency_networks import MAX_MADDS, calibration_networks


def test_networks(n: int, first_seed: int = 20_000) -> list[searchspace.Genotype]:
    """Networks the table is not fitted on: random `cells` ones and the zoo reshaped."""
    space = searchspace.load_space("cells")
    out, seed = [], first_seed
    while len(out) < n:
        g = space.sample(seed=seed).replace(name=f"cells-{seed}")
        seed += 1
        if searchspace.cost(g).madds <= MAX_MADDS:
            out.append(g)
    for name in searchspace.zoo.names():
        g = searchspace.zoo.get(name)
        variants = [g.replace(resolution=r, name=f"{name}@{r}") for r in (24, 40, 48, 64)]
        variants += [searchspace.scale(g, width=w).replace(name=f"{name}x{w}") for w in (0.5, 2)]
        out += [v for v in variants if searchspace.cost(v).madds <= MAX_MADDS]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=120, help="random cells networks to predict")
    p.add_argument("--calibrate", type=int, default=10,
                   help="random networks of each space to fit on, beside the zoo")
    p.add_argument("--first-seed", type=int, default=20_000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out", default="results/latency")
    p.add_argument("--table", default="runs/latency-accuracy-table.json",
                   help="the fresh table made here (650 KB: not published)")
    args = p.parse_args()
    start = time.time()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table_path = Path(args.table)
    table_path.unlink(missing_ok=True)
    predictor = Predictor(LatencyTable(machine("cpu", args.threads, 1), path=table_path),
                          measure_here=True)
    cal = calibration_networks(args.calibrate, MAX_MADDS)
    with tqdm(desc="calibrate", unit="step") as bar:
        predictor.calibrate(cal, args.rounds, bar.update)
    nets = test_networks(args.n, args.first_seed)
    predicted, first, when = [], [], []
    for g in tqdm(nets, desc="predict, then measure", unit="network"):
        predicted.append(predictor.predict(g))  # its new kernels timed now, as in a search
        first += predictor.measure([g], args.rounds)
        when.append(time.time())
    again, gap = [], []
    for g, then in zip(tqdm(nets, desc="measure again", unit="network"), when):
        again += predictor.measure([g], args.rounds)
        gap.append(time.time() - then)
    rows = [_row(*row) for row in zip(nets, predicted, first, again)]
    summary = _summary(args, predictor, rows, time.time() - start, statistics.fmean(gap))
    (out / "accuracy.json").write_text(json.dumps({"summary": summary, "networks": rows},
                                                  indent=1))
    text = _markdown(summary, rows, predictor.table.describe())
    (out / "accuracy.md").write_text(text)
    print(text)


def _within(errors: list[float], limit: float = 0.10) -> float:
    return round(sum(abs(e) <= limit for e in errors) / len(errors), 4)


def _row(g: searchspace.Genotype, predicted: float, first: Timing, again: Timing) -> dict:
    return {"name": g.name, "key": g.key(), "madds": searchspace.cost(g).madds,
            "predicted_ms": round(predicted, 4), "measured_ms": round(first.ms, 4),
            "measured_again_ms": round(again.ms, 4),
            "stopwatch_ms": round(first.stopwatch_ms, 4),
            "stopwatch_again_ms": round(again.stopwatch_ms, 4),
            "error": round((predicted - first.ms) / first.ms, 4)}


def _errors(rows: list[dict], a: str, b: str) -> list[float]:
    return [(r[a] - r[b]) / r[b] for r in rows]


def _summary(args, predictor: Predictor, rows: list[dict], seconds: float, gap: float) -> dict:
    errors = [r["error"] for r in rows]
    repeat = _errors(rows, "measured_again_ms", "measured_ms")
    later = _errors(rows, "predicted_ms", "measured_again_ms")
    stopwatch = _errors(rows, "predicted_ms", "stopwatch_ms")
    return {"networks": len(rows), "mape": _mape(errors), "within_10pct": _within(errors),
            "within_5pct": _within(errors, 0.05),
            "median_abs_error": round(statistics.median(abs(e) for e in errors), 4),
            "repeat_within_10pct": _within(repeat), "repeat_mape": _mape(repeat),
            "repeat_gap_minutes": round(gap / 60, 1),
            "stopwatch_repeat_within_10pct": _within(
                _errors(rows, "stopwatch_again_ms", "stopwatch_ms")),
            "later_within_10pct": _within(later), "later_mape": _mape(later),
            "stopwatch_within_10pct": _within(stopwatch), "stopwatch_mape": _mape(stopwatch),
            "reference_ms": predictor.table.reference_ms,
            "factors": predictor.table.factors, "machine": predictor.table.machine,
            "kernels": len(predictor.table.kernels), "seconds": round(seconds),
            "host": platform.node(), "torch": torch.__version__,
            "command": "python benchmarks/latency_accuracy.py " + _flags(args)}


def _mape(errors: list[float]) -> float:
    return round(statistics.fmean(abs(e) for e in errors), 4)


def _markdown(s: dict, rows: list[dict], machine_text: str) -> str:
    pct = {k: f"{100 * v:.0f}%" for k, v in s.items() if k.endswith("pct")}
    pct.update({k: f"{100 * v:.1f}%" for k, v in s.items() if k.endswith("mape")})
    worst = sorted(rows, key=lambda r: -abs(r["error"]))[:8]
    lines = [f"# Latency prediction accuracy, {machine_text}", "",
             f"`{s['command']}` ({s['seconds'] / 60:.1f} min, {s['host']}, torch {s['torch']})",
             "",
             f"- networks predicted (none used in the fit): {s['networks']}, each measured "
             "right after its prediction",
             f"- mean absolute percentage error: {pct['mape']}",
             f"- within +-10%: {pct['within_10pct']}; within +-5%: {pct['within_5pct']}",
             f"- the same networks measured again, {s['repeat_gap_minutes']:.0f} minutes later "
             f"on average: {pct['repeat_within_10pct']} within +-10% of the first measurement "
             f"(mean difference {pct['repeat_mape']}; their best raw times: "
             f"{pct['stopwatch_repeat_within_10pct']}); the predictions against that later "
             f"measurement: {pct['later_within_10pct']} within +-10%, MAPE {pct['later_mape']}",
             f"- against the stopwatch (the best raw time of the first measurement): "
             f"{pct['stopwatch_within_10pct']} within +-10%, mean error {pct['stopwatch_mape']}",
             f"- the reference workload's quiet time: {s['reference_ms']:.4f} ms",
             f"- fitted factors: {s['factors']}", "", "Worst predictions:", "",
             table(("network", "madds", "predicted ms", "measured ms", "error", "again ms"),
                   [(r["name"], f"{r['madds'] / 1e6:.1f}M", f"{r['predicted_ms']:.2f}",
                     f"{r['measured_ms']:.2f}", f"{100 * r['error']:+.1f}%",
                     f"{r['measured_again_ms']:.2f}") for r in worst],
                   right={1, 2, 3, 4, 5})]
    return "\n".join(lines) + "\n"


def _flags(args) -> str:
    return (f"--n {args.n} --first-seed {args.first_seed} --calibrate {args.calibrate} "
            f"--threads {args.threads} "
            f"--rounds {args.rounds} --out {args.out}")


if __name__ == "__main__":
    main()
