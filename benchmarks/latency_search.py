"""At equal measured latency on this CPU, which finds the network the proxy scores higher: a
search of `cells` under a latency budget, or one under the multiply-add budget that gives
networks of about the same measured latency?

The multiply-add budget is the latency budget times the median multiply-adds per measured
millisecond of the `cells` networks this machine's latency table was calibrated on. Each
search (evolution, proxy-cpu, no scaling) runs with each seed; each winner is then trained
``--retrain`` more times by proxy-cpu and scored on the 2,000 validation images no search
sees, and all winners are timed end to end together, as latency tables count time
(``Predictor.measure``: at least 5 rounds, each beside the reference workload).

``--remeasure`` times the published winners again with this machine's table and timing as
they are now, and appends what it finds to ``search.md``: the figures of a run made before
a change to the timing, without searching again.

    python benchmarks/latency_search.py [--latency 4] [--trials 10] [--seeds 0 1]
    python benchmarks/latency_search.py --remeasure
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import nas
import searchspace
from evaluators.recipe import load_profile
from nas.compare import reporting_evaluator
from nas.latency_cmd import prepare
from nas.report_table import table
from searchspace.latency_networks import calibration_networks


def madds_per_ms(predictor) -> float:
    """Median multiply-adds per measured millisecond of the table's `cells` networks."""
    by_key = {g.key(): g for g in calibration_networks()}
    ratios = [searchspace.cost(by_key[c["key"]]).madds / c["measured_ms"]
              for c in predictor.table.calibration
              if c["name"].startswith("cells-") and c["key"] in by_key]
    if not ratios:
        sys.exit("the latency table has no cells networks: run `nas latency-table` first")
    return statistics.median(ratios)


def run(args) -> dict:
    predictor = prepare("cpu")
    madds = args.latency * madds_per_ms(predictor)
    budgets = {"latency": f"{args.latency:g}ms-latency", "madds": f"{madds / 1e6:.1f}M-madds"}
    runs = []
    for seed in args.seeds:
        for kind, budget in budgets.items():
            out = Path(args.work) / f"{kind}-seed{seed}"
            print(f"search under {budget}, seed {seed} -> {out}", file=sys.stderr, flush=True)
            r = nas.search("cells", "proxy-cpu", budget, trials=args.trials, seed=seed,
                           out=out, data=args.data, scale=False, rescore_best=0, baselines=[],
                           progress=True, resume=(out / "summary.json").exists())
            runs.append({"seed": seed, "budget": kind, "budget_text": budget,
                         "genotype": r.best.to_yaml(), "search_score": r.score,
                         "madds": searchspace.cost(r.best).madds,
                         "predicted_ms": predictor.predict(r.best)})
    _retrain(runs, args)
    nets = [searchspace.Genotype.from_yaml(r["genotype"]) for r in runs]
    for r, (ms, _) in zip(runs, predictor.measure(nets, rounds=5)):
        r["measured_ms"] = ms
    return {"budgets": budgets, "madds_per_ms": madds_per_ms(predictor), "runs": runs,
            "machine": predictor.table.describe()}


def _retrain(runs: list[dict], args) -> None:
    ev = reporting_evaluator(load_profile("proxy-cpu"), args.data)
    ev.load()
    for r in runs:
        g = searchspace.Genotype.from_yaml(r["genotype"])
        r["heldout"] = [ev.train(g, 1000 + s).accuracy for s in range(args.retrain)]
        print(f"  {r['budget']} seed {r['seed']}: held-out {r['heldout']}", file=sys.stderr)


def report(result: dict, args, seconds: float) -> str:
    rows = [(r["seed"], r["budget_text"], f"{r['madds'] / 1e6:.1f}M",
             f"{r['predicted_ms']:.2f}", f"{r['measured_ms']:.2f}",
             f"{100 * r['search_score']:.2f}",
             f"{100 * statistics.fmean(r['heldout']):.2f} +- "
             f"{100 * statistics.pstdev(r['heldout']):.2f}") for r in result["runs"]]
    mean = {k: statistics.fmean(statistics.fmean(r["heldout"]) for r in result["runs"]
                                if r["budget"] == k) for k in result["budgets"]}
    lat = {k: statistics.fmean(r["measured_ms"] for r in result["runs"] if r["budget"] == k)
           for k in result["budgets"]}
    return "\n".join([
        "# Latency budget against the multiply-add budget of the same latency "
        f"({result['machine']})",
        "", f"`python benchmarks/latency_search.py {_flags(args)}` ({seconds / 60:.0f} min)", "",
        f"Multiply-add budget: {args.latency:g} ms x {result['madds_per_ms'] / 1e6:.1f}M "
        "multiply-adds per measured ms (median of the table's `cells` networks).", "",
        table(("seed", "budget", "madds", "predicted ms", "measured ms", "search score %",
               f"held-out % ({args.retrain} trainings)"), rows, right={2, 3, 4, 5, 6}), "",
        *(f"- {k} budget: held-out {100 * mean[k]:.2f}% on average at {lat[k]:.2f} ms measured"
          for k in result["budgets"])])


_AGAIN = "\n## The winners timed again"


def remeasure(out: Path) -> None:
    """Predict and measure the winners in ``out/search.json`` now; the section it appends to
    ``out/search.md`` replaces the one an earlier call appended."""
    result = json.loads((out / "search.json").read_text())
    predictor = prepare("cpu")
    nets = [searchspace.Genotype.from_yaml(r["genotype"]) for r in result["runs"]]
    measured = predictor.measure(nets, rounds=5)
    rows = [(r["seed"], r["budget_text"], f"{r['predicted_ms']:.2f}", f"{r['measured_ms']:.2f}",
             f"{predictor.predict(g):.2f}", f"{ms:.2f}", f"{raw:.2f}")
            for r, g, (ms, raw) in zip(result["runs"], nets, measured)]
    text = (out / "search.md").read_text().split(_AGAIN)[0].rstrip("\n")
    section = [_AGAIN.strip(), "", f"`python benchmarks/latency_search.py --remeasure` "
               f"({time.strftime('%Y-%m-%d')}, {predictor.table.describe()}): the same "
               "winners, predicted by this machine's table of today and measured as tables "
               "now count time (each timing beside a reference workload; the median of at "
               "least 5 ratios, times its quiet time), with the best raw time a stopwatch "
               "saw. \"Then\": the figures above, from the table and timing of the search's "
               "day (the best raw time of 5 rounds).", "",
               table(("seed", "budget", "predicted ms then", "measured ms then",
                      "predicted ms now", "measured ms now", "stopwatch ms now"), rows,
                     right={2, 3, 4, 5, 6})]
    (out / "search.md").write_text(text + "\n\n" + "\n".join(section) + "\n")
    print("\n".join(section))


def _flags(args) -> str:
    return (f"--latency {args.latency:g} --trials {args.trials} --seeds "
            f"{' '.join(map(str, args.seeds))} --retrain {args.retrain}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--latency", type=float, default=4.0, help="milliseconds, batch 1")
    p.add_argument("--trials", type=int, default=10)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--retrain", type=int, default=2)
    p.add_argument("--data", default="../shared/data/cifar10-jpeg.tar.gz")
    p.add_argument("--work", default="runs/latency-search")
    p.add_argument("--out", default="results/latency")
    p.add_argument("--remeasure", action="store_true",
                   help="time the published winners again; no search")
    args = p.parse_args()
    if args.remeasure:
        remeasure(Path(args.out))
        return
    start = time.time()
    result = run(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "search.json").write_text(json.dumps(result, indent=1))
    text = report(result, args, time.time() - start)
    (out / "search.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
