"""The whole pipeline with real training, judged by NAS-Bench-Macro's table.

A search on the ``nbmacro`` space with a training proxy names a network; the benchmark trained
every network of that space three times for 50 epochs, so the table says how good the named
network really is, against the best inside the budget and against what simple rules would
have picked without the search's trainings:

    nas search --space nbmacro --evaluator proxy-cpu --budget 50M-madds --no-scale \\
        --trials 24 --seed 0 --baselines '' --data ../shared/data/cifar10-jpeg.tar.gz \\
        --out runs/item7-seed0
    python benchmarks/nbmacro_pipeline.py runs/item7-seed0 runs/item7-seed1 --out results/nbmacro

For each run folder: the named network (its proxy score, the table's mean and regret);
among the networks the run trained, the best by the table (a perfect final choice) and the
one of most parameters or multiply-adds, or of best summed rank of proxy score and
multiply-adds; Kendall tau against the table, on those networks,
of the proxy's score, the parameter count and the multiply-adds. Without any training, over
the budget: a random network (expected), the network of most parameters or multiply-adds,
and a random search of as many networks that names the one of most of either (expected over
10,000 draws, as our random strategy draws: uniform strings, over-budget ones rejected, each
network once).
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import statistics
import sys
from pathlib import Path
from types import SimpleNamespace

import optuna

from bench_tables import TABLE_DIRS, population
from evaluators.zero_cost import kendall_tau, vote
from nas.budget import parse_budget
from nas.report_table import table
from nas.run_folder import command_line
from nas.storage import open_storage
from nas.tally import best_trial
from nas.trial import Status, records
from searchspace import nbmacro

BIAS = 10  # our multiply-adds count the classifier's bias; the table's do not
DRAWS = 10_000
_RULES = (("params", "parameters"), ("madds", "multiply-adds"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="run folders of nas search --space nbmacro")
    p.add_argument("--table", default=str(TABLE_DIRS["nbmacro"]))
    p.add_argument("--out", type=Path, help="folder for pipeline.md and pipeline.json")
    args = p.parse_args(argv)
    networks = population("nbmacro", args.table)  # (canonical string, assignment, mean, p, m)
    judged = [judge(run, networks) for run in args.runs]
    text = render(judged)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        command = "python benchmarks/nbmacro_pipeline.py " + " ".join(
            str(r) for r in args.runs) + f" --out {args.out}"
        (args.out / "pipeline.md").write_text(
            f"# A real search on NAS-Bench-Macro, judged by the table\n\n`{command}`\n\n"
            + "\n".join(f"- `{j['command']}`: {j['environment']}" for j in judged)
            + "\n\n```\n" + text + "\n```\n")
        (args.out / "pipeline.json").write_text(json.dumps(judged, indent=1) + "\n")
    return 0


def judge(run: Path, networks: list) -> dict:
    """What the table says of one run folder's choice and of the simple rules' picks."""
    cfg = json.loads((run / "config.json").read_text())
    study = optuna.load_study(study_name=cfg["study"],
                              storage=open_storage(run / "study.journal"))
    limit = parse_budget(cfg["budget"]).limits.madds - BIAS
    inside = [n for n in networks if n[4] <= limit]
    mean_of = {n[0]: n[2] for n in networks}
    best = max(inside, key=lambda n: n[2])
    trained = _trained(study)  # canonical string -> (proxy score, params)
    named = best_trial(study)
    assert named is not None, f"{run}: no network scored"
    named_arch = nbmacro.canonical(nbmacro.arch_string(named.decisions))
    archs = list(trained)
    by_params = max(archs, key=lambda a: (trained[a][1], -mean_of[a]))  # ties: the worse
    by_madds = max(archs, key=lambda a: (trained[a][2], -mean_of[a]))
    by_vote = _by_vote(archs, trained)
    summary = json.loads((run / "summary.json").read_text())
    report = (run / "report.md").read_text().splitlines()
    return {
        "run": str(run), "seed": cfg["seed"], "budget": cfg["budget"],
        "strategy": cfg["strategy"], "evaluator": cfg["evaluator"],
        "screen": cfg.get("screen", 1), "screen_by": cfg.get("screen_by", ""),
        "command": command_line(SimpleNamespace(**cfg)),
        "environment": next((ln.split("; ", 1)[1] for ln in report
                             if ln.startswith("- search wall time")), ""),
        "minutes": round(summary["seconds"] / 60, 1), "trained": len(archs),
        "best_inside": {"arch": best[0], "mean": best[2]},
        "named": {"arch": named_arch, "proxy": named.values[0], "mean": mean_of[named_arch]},
        "oracle_of_trained": max(mean_of[a] for a in archs),
        "params_of_trained": {"arch": by_params, "mean": mean_of[by_params]},
        "madds_of_trained": {"arch": by_madds, "mean": mean_of[by_madds]},
        "vote_of_trained": {"arch": by_vote, "mean": mean_of[by_vote]},
        "random_of_trained": statistics.fmean(mean_of[a] for a in archs),
        "tau_proxy": kendall_tau([trained[a][0] for a in archs], [mean_of[a] for a in archs]),
        "tau_params": kendall_tau([trained[a][1] for a in archs], [mean_of[a] for a in archs]),
        "tau_madds": kendall_tau([trained[a][2] for a in archs], [mean_of[a] for a in archs]),
        "random_inside": statistics.fmean(n[2] for n in inside),
        "params_inside": _most(inside, 3), "madds_inside": _most(inside, 4),
        "random_search_params": _random_search_by(3, len(archs), limit, networks, cfg["seed"]),
        "random_search_madds": _random_search_by(4, len(archs), limit, networks, cfg["seed"]),
    }


def _trained(study: optuna.Study) -> dict[str, tuple[float, int, int]]:
    """Each network the run trained: its first proxy score, parameters and multiply-adds."""
    out: dict[str, tuple[float, int, int]] = {}
    for r in records(study):
        if r.status is Status.OK and r.values:
            out.setdefault(nbmacro.canonical(nbmacro.arch_string(r.decisions)),
                           (r.values[0], r.params, r.madds))
    return out


def _by_vote(archs: list[str], trained: dict) -> str:
    """The trained network of best summed rank of its proxy score and its multiply-adds
    (ties: the better proxy score)."""
    votes = vote([{"proxy": trained[a][0], "madds": trained[a][2]} for a in archs],
                 ["proxy", "madds"])
    return max(zip(archs, votes), key=lambda av: (av[1], trained[av[0]][0]))[0]


def _most(inside: list, field: int) -> dict:
    """The network of most parameters (field 3) or multiply-adds (4); ties averaged."""
    top = max(n[field] for n in inside)
    tied = [n for n in inside if n[field] == top]
    return {"arch": tied[0][0], "mean": statistics.fmean(n[2] for n in tied), "tied": len(tied)}


def _random_search_by(field: int, k: int, limit: float, networks: list, seed: int) -> float:
    """Expected table mean of the network of most parameters (field 3) or multiply-adds (4)
    among ``k`` distinct in-budget networks drawn as the random strategy draws them."""
    by_arch = {n[0]: n for n in networks}
    strings = [nbmacro.canonical("".join(d)) for d in itertools.product("012", repeat=8)]
    fits = [by_arch[a] for a in strings if by_arch[a][4] <= limit]  # uniform strings, in budget
    rng, picks = random.Random(1000 + seed), []
    for _ in range(DRAWS):
        seen: dict[str, tuple] = {}
        while len(seen) < k:
            n = rng.choice(fits)
            seen[n[0]] = n
        picks.append(max(seen.values(), key=lambda n: (n[field], -n[2]))[2])
    return statistics.fmean(picks)


def render(judged: list[dict]) -> str:
    """One row per run, then the rules that train nothing; accuracies: the table's mean."""
    rows = []
    for j in judged:
        b = j["best_inside"]["mean"]
        picks = [j["named"]["mean"], j["oracle_of_trained"],
                 *(j[f"{x}_of_trained"]["mean"] for x in ("params", "madds", "vote")),
                 j["random_of_trained"]]
        screen = f", screen {j['screen']} by {j['screen_by']}" if j["screen"] > 1 else ""
        rows.append([f"{j['strategy']} seed {j['seed']}{screen}", j["budget"],
                     f"{j['trained']} in {j['minutes']} min",
                     f"`{j['named']['arch']}` {100 * j['named']['proxy']:.1f}%",
                     *(f"{v:.2f} ({b - v:.2f})" for v in picks),
                     f"{j['tau_proxy']:.2f} / {j['tau_params']:.2f} / {j['tau_madds']:.2f}"])
    head = ["run", "budget", "networks trained", "named (proxy score)", "named: table mean "
            "(regret)", "best trained", "most params of trained", "most madds of trained",
            "proxy + madds vote of trained",
            "random of trained", "tau: proxy / params / madds"]
    j = judged[0]
    b = j["best_inside"]["mean"]
    rules = [["best inside the budget", f"`{j['best_inside']['arch']}`", f"{b:.2f}", "0"],
             ["a random network inside the budget (expected)", "",
              f"{j['random_inside']:.2f}", f"{b - j['random_inside']:.2f}"],
             *([f"the network of most {word} inside the budget",
                f"`{j[f'{x}_inside']['arch']}`", f"{j[f'{x}_inside']['mean']:.2f}",
                f"{b - j[f'{x}_inside']['mean']:.2f}"] for x, word in _RULES)]
    for x in judged:
        rules += [[f"random search of {x['trained']} networks, named by {word} "
                   f"(expected, {DRAWS:,} draws, seed {x['seed']})", "",
                   f"{x[f'random_search_{y}']:.2f}", f"{b - x[f'random_search_{y}']:.2f}"]
                  for y, word in _RULES]
    same = len({x["budget"] for x in judged}) == 1
    return ("Accuracies are NAS-Bench-Macro's mean test accuracy (%) of three 50-epoch "
            "trainings; regret in points to the best network inside the budget.\n\n"
            + table(head, rows, right=set(range(2, 11))) + "\n\n"
            + ("Rules that train nothing, at the same budget:\n\n" if same else
               f"Rules that train nothing, at {j['budget']}:\n\n")
            + table(["rule", "network", "table mean", "regret"], rules, right={2, 3}))


if __name__ == "__main__":
    sys.exit(main())
