"""How well the latency table predicts a network's measured latency (nn-Meter's measure:
the mean absolute percentage error and the share of networks within +-10%).

A fresh table is made on this machine and calibrated as `nas latency-table` does (the zoo as
it is, 1.5x as wide and at 56 pixels, and ``--calibrate`` random networks of each space,
seeds 0..); it then predicts networks it was not fitted on, measuring their kernels as a
search does: ``--n`` random `cells` networks (seeds from ``--first-seed``), and the zoo at
24, 40, 48 and 64 pixels and at half and double width. The fit's settings were chosen on
seeds from 10,000; the published run uses seeds from 20,000. Each network is measured end
to end, the best of ``--rounds`` rounds.

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
from searchspace.latency import LatencyTable, Predictor, machine, measure_networks
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
    p.add_argument("--rounds", type=int, default=3)
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
    with tqdm(desc="predict + measure", unit="step") as bar:
        predicted = [predictor.predict(g) for g in nets]
        bar.update(len(nets))
        measured = measure_networks(nets, predictor.table.machine, args.rounds, bar.update)
    _report(args, out, predictor, nets, predicted, measured, time.time() - start)


def _report(args, out: Path, predictor: Predictor, nets, predicted, measured, seconds) -> None:
    errors = [(p - m) / m for p, m in zip(predicted, measured)]
    within = sum(abs(e) <= 0.10 for e in errors) / len(errors)
    mape = statistics.fmean(abs(e) for e in errors)
    rows = [{"name": g.name, "key": g.key(), "madds": searchspace.cost(g).madds,
             "predicted_ms": round(p, 4), "measured_ms": round(m, 4), "error": round(e, 4)}
            for g, p, m, e in zip(nets, predicted, measured, errors)]
    summary = {"networks": len(nets), "mape": round(mape, 4), "within_10pct": round(within, 4),
               "within_5pct": round(sum(abs(e) <= 0.05 for e in errors) / len(errors), 4),
               "median_abs_error": round(statistics.median(abs(e) for e in errors), 4),
               "factors": predictor.table.factors, "machine": predictor.table.machine,
               "kernels": len(predictor.table.kernels), "seconds": round(seconds),
               "command": "python benchmarks/latency_accuracy.py " + _flags(args)}
    (out / "accuracy.json").write_text(json.dumps({"summary": summary, "networks": rows},
                                                  indent=1))
    worst = sorted(rows, key=lambda r: -abs(r["error"]))[:8]
    lines = [f"# Latency prediction accuracy, {predictor.table.describe()}", "",
             f"`{summary['command']}` ({seconds / 60:.1f} min, {platform.node()}, torch "
             f"{torch.__version__})", "",
             f"- networks predicted (none used in the fit): {len(nets)}",
             f"- mean absolute percentage error: {100 * mape:.1f}%",
             f"- within +-10%: {100 * within:.0f}%; within +-5%: "
             f"{100 * summary['within_5pct']:.0f}%",
             f"- fitted factors: {predictor.table.factors}", "", "Worst predictions:", "",
             table(("network", "madds", "predicted ms", "measured ms", "error"),
                   [(r["name"], f"{r['madds'] / 1e6:.1f}M", f"{r['predicted_ms']:.2f}",
                     f"{r['measured_ms']:.2f}", f"{100 * r['error']:+.1f}%") for r in worst],
                   right={1, 2, 3, 4})]
    (out / "accuracy.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _flags(args) -> str:
    return (f"--n {args.n} --first-seed {args.first_seed} --calibrate {args.calibrate} "
            f"--threads {args.threads} "
            f"--rounds {args.rounds} --out {args.out}")


if __name__ == "__main__":
    main()
