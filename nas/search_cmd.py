"""`nas search`: the product's main command."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from evaluators import TABLES
from evaluators.zero_cost import PROXIES, TRIVIAL
from nas import flags
from nas.config import SearchConfig, defaults, parse_duration
from nas.errors import UserError
from nas.for_data import add_data_flags, data_source
from nas.latency_cmd import latency_text
from nas.pipeline import run_search
from nas.report_table import images
from nas.screen import DEFAULT_BY
from nas.strategies import NAMES

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add `nas search` to the CLI."""
    s = sub.add_parser("search", help="find a network that fits a budget",
                       description="Search a base network, compound-scale it to the budget, "
                                   "export it and write a report in the run folder.")
    s.add_argument("--budget", help="e.g. 600M-madds, 1.2G-flops, 3M-params, 4ms-latency, "
                                    "600M-madds,5M-params (with a table evaluator: optional, "
                                    "its cells as they are)")
    s.add_argument("--strategy", default="evolution", help=f"one of {', '.join(NAMES)} "
                                                           "(default: evolution)")
    s.add_argument("--trials", type=int, help="networks scored (default: 100 on a GPU or with "
                                               "a table, 14 on a CPU)")
    s.add_argument("--time", help="wall-clock limit of the search, e.g. 45m or 2h")
    s.add_argument("--space", default="cells", help="cells, nb201, nbmacro or a space YAML "
                                                    "path (default: cells)")
    s.add_argument("--evaluator", help="a profile name or YAML path (default: proxy-gpu on a "
                                       "GPU, proxy-cpu otherwise), nb201-table: "
                                       "NAS-Bench-201's accuracies, with --space nb201, or "
                                       "nbmacro-table: one of NAS-Bench-Macro's three "
                                       "trainings by the seed, with --space nbmacro")
    add_data_flags(s, "; for nb201-table its CSV or folder ($NAS_NB201), for nbmacro-table "
                      "its JSON or folder ($NAS_NBMACRO)")
    s.add_argument("--out", help="the run folder (default: runs/<date>-<strategy>)")
    s.add_argument("--storage", help="a database URL shared by workers on several machines, "
                                     "e.g. postgresql://user@host/db")
    s.add_argument("--study", default="search", help="study name inside the storage")
    s.add_argument("--workers", type=int, help="worker processes on this machine (default: 1)")
    s.add_argument("--seed", type=flags.seed, default=0,
                   help=f"0 to {flags.MAX_SEED:,} (default: 0)")
    s.add_argument("--no-scale", action="store_true",
                   help="search at the full budget and do not scale the winner")
    s.add_argument("--baselines", default=None,
                   help="zoo nets compared with the winner at the proxy level, comma-separated "
                        "('' for none; default: resnet20,mobilenetv2 on CPU, all on a GPU)")
    s.add_argument("--screen", type=int, metavar="K",
                   help="each trial: K proposals of the strategy, the one a zero-cost score "
                        "ranks first is trained (default: 1, no screening)")
    s.add_argument("--screen-by", default=DEFAULT_BY, metavar="SCORE",
                   help=f"the zero-cost score: {', '.join([*PROXIES, *TRIVIAL])}, or "
                        f"vote:A+B[+...] (their summed ranks) (default: {DEFAULT_BY})")
    s.add_argument("--rescore", type=int, metavar="K",
                   help="the final choice: the K networks of best single scores trained twice "
                        "more (other seeds), the winner named by its mean; the trainings "
                        "count in --trials (default: 5 with 100 trials or more and a noisy "
                        "reward, else 0)")
    s.add_argument("--resume", metavar="DIR", help="continue the run in DIR to its total; "
                   f"{', '.join(RESUMABLE)} may be given again, other flags are the run's own")
    s.add_argument("--json", action="store_true", help="print one final JSON line")
    s.set_defaults(run=_run)


# flags a resumed run may change; the others define the run and come from its config.json
RESUMABLE = ("--data", "--resize", "--trials", "--time", "--workers")


def _resumed(args: argparse.Namespace) -> SearchConfig:
    if args.resize is not None and not args.data:
        raise UserError("--resize on a resume goes with --data: the images it resizes")
    path = Path(args.resume) / "config.json"
    if not path.is_file():
        raise UserError(f"{args.resume}: not a run folder (no config.json)")
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        cfg = SearchConfig.from_dict(data)
        _check_types(cfg)
    except (OSError, UnicodeDecodeError, ValueError, TypeError) as exc:
        raise UserError(f"{path}: damaged ({' '.join(str(exc).split())[:120]}); start a new "
                        "run, or repair the file") from None
    _check_evaluator(cfg, path)
    return replace(cfg, out=args.resume, started=time.time(),
                   trials=args.trials or cfg.trials,
                   time_s=parse_duration(args.time) if args.time else cfg.time_s,
                   data=data_source(args) if args.data else cfg.data,
                   workers=cfg.workers if args.workers is None else args.workers)


def _check_evaluator(cfg: SearchConfig, path: Path) -> None:
    """A run scored by a Python evaluator (nas.search) cannot be rebuilt from its name."""
    from evaluators import known

    if not known(cfg.evaluator):
        raise UserError(f"{path}: this run was scored by {cfg.evaluator!r}, which is not an "
                        "evaluator of ours (a Python one?); resume it from Python: "
                        f"nas.search(..., out={str(path.parent)!r}, resume=True)")


def _check_types(cfg: SearchConfig) -> None:
    """TypeError naming the first field of a loaded config whose value has the wrong type."""
    expect = {"budget": (str, type(None)), "strategy": str, "trials": (int, type(None)),
              "time_s": (int, float, type(None)), "space": str, "evaluator": str,
              "data": (str, type(None)), "storage": (str, type(None)), "study": str,
              "workers": int, "seed": int, "scale": bool, "base_fraction": (int, float),
              "reduced_cpu": bool, "baselines": (list, type(None)), "screen": int,
              "screen_by": str, "started": (int, float), "rescore": int,
              "rescore_seeds": int, "shape": (list, type(None))}
    for name, kinds in expect.items():
        value = getattr(cfg, name)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in
                                            (kinds if isinstance(kinds, tuple) else (kinds,))):
            raise TypeError(f"{name} is {value!r}")


def _config(args: argparse.Namespace) -> tuple[SearchConfig, bool]:
    if args.resume:
        return _resumed(args), True
    table = (args.evaluator or "") in TABLES
    if not args.budget and not table:
        raise UserError("--budget is required (e.g. --budget 600M-madds)")
    out = args.out or f"runs/{time.strftime('%Y%m%d-%H%M%S')}-{args.strategy}"
    if Path(out).joinpath("config.json").exists():
        raise UserError(f"{out} already holds a run; use --resume {out} or another --out")
    cfg = SearchConfig(budget=args.budget, strategy=args.strategy, trials=args.trials,
                       time_s=parse_duration(args.time) if args.time else None,
                       space=args.space, evaluator=args.evaluator or "proxy-cpu",
                       data=data_source(args), out=out, storage=args.storage, study=args.study,
                       workers=1 if args.workers is None else args.workers, seed=args.seed,
                       scale=not args.no_scale,
                       baselines=_baselines(args.baselines),
                       screen=1 if args.screen is None else args.screen,
                       screen_by=args.screen_by,
                       rescore=-1 if args.rescore is None else args.rescore)
    return defaults(cfg, args.trials is not None, args.time is not None,
                    args.evaluator is not None), False


def _baselines(text: str | None) -> list[str] | None:
    if text is None:
        return None
    import searchspace

    names = [b.strip() for b in text.split(",") if b.strip()]
    for b in names:
        if b not in searchspace.zoo.names():
            raise UserError(f"unknown baseline {b!r} (zoo: {', '.join(searchspace.zoo.names())})")
    return names


def _run(args: argparse.Namespace) -> None:
    cfg, resume = _config(args)
    summary = run_search(cfg, resume=resume, progress=True)
    best = summary["best"]
    out = Path(cfg.out)
    print(f"\nbest: {100 * best['val_accuracy']:.2f}% for the base on "
          f"{images(best.get('split') or 'val')} "
          f"({best['base_madds'] / 1e6:.1f}M multiply-adds); final network "
          f"{best['madds'] / 1e6:.1f}M multiply-adds, {best['params']:,} parameters"
          + (f", {latency_text(best['latency'])}" if best.get("latency") else "") + "\n"
          f"wrote in {out}/: {', '.join(_written(out))}", file=sys.stderr)
    if args.json:
        print(json.dumps({k: summary[k] for k in ("best", "trials", "out")}))


def _written(out: Path) -> list[str]:
    """What the run folder holds, as the user will list it."""
    return sorted(p.name + ("/" if p.is_dir() else "") for p in out.iterdir()
                  if not p.name.endswith((".flock", ".lock")))
