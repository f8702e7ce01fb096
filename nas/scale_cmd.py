"""`nas scale` and `nas export`: grow a genotype to a budget; write it as a standalone model."""

from __future__ import annotations

import argparse
import json
import sys

import searchspace
from evaluators.data import data_info
from nas import flags
from nas.budget import parse_budget
from nas.errors import UserError
from nas.for_data import add_data_flags, data_source, fitted
from nas.genotypes import resolve_genotype
from nas.latency_cmd import latency_figures, latency_text, prepare
from nas.paths import check_writable
from nas.scaling import (
    EFFICIENTNET,
    MAX_COEFFICIENT,
    best_coefficients,
    grid_points,
    scale_to_budget,
)

_COEFFICIENT = flags.number(1.0, MAX_COEFFICIENT)

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add `nas scale` and `nas export` to the CLI."""
    s = sub.add_parser("scale", help="compound-scale a genotype to fill a budget")
    s.add_argument("genotype", help="zoo name, YAML file or run folder")
    s.add_argument("--budget", required=True,
                   help="e.g. 600M-madds, 1.2G-flops, 3M-params, 4ms-latency")
    s.add_argument("-o", "--output", help="write the scaled genotype YAML here")
    s.add_argument("--alpha", type=_COEFFICIENT, default=EFFICIENTNET[0],
                   help="depth base (1.2)")
    s.add_argument("--beta", type=_COEFFICIENT, default=EFFICIENTNET[1], help="width base (1.1)")
    s.add_argument("--gamma", type=_COEFFICIENT, default=EFFICIENTNET[2],
                   help="resolution base (1.15)")
    s.add_argument("--grid", action="store_true",
                   help="first pick (alpha, beta, gamma) on alpha*beta^2*gamma^2 ~ 2 by the "
                        "proxy, every point scaled to 2x the multiply-adds")
    s.add_argument("--grid-step", type=flags.number(0.01, 1.0), default=0.2,
                   help="grid step of alpha, 0.01 to 1 (default: 0.2)")
    s.add_argument("--profile", default=None, help="proxy profile for --grid")
    s.add_argument("--seeds", type=int, default=2,
                   help="training seeds averaged per --grid point (default: 2)")
    add_data_flags(s, "; with it, the network is built for these images first (their "
                      "classes and side) and --grid trains on them")
    s.add_argument("--json", action="store_true", help="print one JSON line")
    s.set_defaults(run=_scale)

    e = sub.add_parser("export", help="write a genotype as a standalone PyTorch model")
    e.add_argument("genotype", help="zoo name, YAML file or run folder (exports its winner)")
    e.add_argument("-o", "--output", required=True, help="model.py, model.pt2 or model.onnx")
    e.add_argument("--weights", help="a `nas train -o` checkpoint or a plain state_dict")
    e.add_argument("--format", choices=("py", "pt2", "onnx"), default=None,
                   help="default: from the output's suffix, else py")
    add_data_flags(e, "; model.py names their classes and uses their statistics",
                   default="the checkpoint's or the run folder's record of them")
    e.set_defaults(run=_export)


def _scale(args: argparse.Namespace) -> None:
    if args.output:
        check_writable(args.output)
    g = resolve_genotype(args.genotype)
    recipe = _grid_recipe(args) if args.grid else None  # a wrong profile first: it reads nothing
    if args.data or args.resize is not None:
        g, note = fitted(args.genotype, g, data_info(data_source(args)))
        if note:
            print(note, file=sys.stderr)
    budget = parse_budget(args.budget)
    latency = budget.limits.latency_ms is not None
    if latency:
        prepare(budget.limits.latency_on)  # a new table measured now, with progress
    coeffs = (args.alpha, args.beta, args.gamma)
    if args.grid:
        coeffs = _grid(g, args, recipe)
    r = scale_to_budget(g, budget.limits, *coeffs)
    c0, c = searchspace.cost(g), searchspace.cost(r.genotype)
    if args.output:
        r.genotype.to_yaml(args.output)
    figures = latency_figures(r.genotype, budget.limits.latency_on) if latency else None
    print(f"{g.name or 'genotype'}: {c0.madds / 1e6:.1f}M -> {c.madds / 1e6:.1f}M multiply-adds "
          f"({100 * r.ratio:.1f}% of {budget}), {c0.params:,} -> {c.params:,} parameters; "
          f"phi {r.phi:.2f} with alpha {r.alpha}, beta {r.beta}, gamma {r.gamma}, "
          f"{r.fill_steps} fill steps; resolution {r.genotype.resolution}, depths "
          f"{[s.depth for s in r.genotype.stages]}, widths {[s.width for s in r.genotype.stages]}"
          + (f"; latency {latency_text(figures, budget.limits.latency_ms)}" if figures else "")
          + (f"; written to {args.output}" if args.output else ""), file=sys.stderr)
    if args.json:
        print(json.dumps({"madds": c.madds, "params": c.params, "ratio": r.ratio, "phi": r.phi,
                          "alpha": r.alpha, "beta": r.beta, "gamma": r.gamma,
                          "resolution": r.genotype.resolution, "output": args.output,
                          "latency": figures}))
    elif not args.output:
        print(r.genotype.to_yaml(), end="")


def _grid_recipe(args: argparse.Namespace):
    """The profile --grid trains by; one line when it cannot tell the grid's points apart."""
    from evaluators.recipe import check_device, load_profile
    from nas.train_cmd import default_profile

    if args.seeds < 1:
        raise UserError("--seeds must be at least 1")
    recipe = load_profile(args.profile or default_profile())
    check_device(recipe.device, recipe.name)
    if recipe.depth_mult != 1.0 or recipe.resolution:
        raise UserError(f"{recipe.name} trains every network at {recipe.reduction()}: the grid "
                        "could not tell depth or resolution apart; use a profile that trains "
                        "networks at their own depth and resolution (proxy-cpu, proxy-gpu)")
    return recipe


def _grid(g: searchspace.Genotype, args: argparse.Namespace, recipe
          ) -> tuple[float, float, float]:
    from evaluators.base import Status
    from evaluators.proxy import ProxyEvaluator

    ev = ProxyEvaluator(recipe, data=data_source(args))
    ev.load()
    points = grid_points(args.grid_step)
    print(f"grid: {len(points)} points of (alpha, beta, gamma), each scaled to 2x the "
          f"base's multiply-adds and trained by {ev.recipe.name} with {args.seeds} seed(s)",
          file=sys.stderr)

    def score(scaled: searchspace.Genotype) -> float:
        accs = []
        for seed in range(args.seeds):
            result = ev.evaluate(scaled, seed)
            accs.append(result.accuracy if result.status == Status.OK else 0.0)
        acc = sum(accs) / len(accs)
        print(f"  {searchspace.cost(scaled).madds / 1e6:8.1f}M  {100 * acc:5.2f}% (mean of "
              f"{len(accs)})", file=sys.stderr)
        return acc

    best, _ = best_coefficients(g, score, points)
    print(f"grid: best alpha {best[0]}, beta {best[1]}, gamma {best[2]}", file=sys.stderr)
    return best


def _export(args: argparse.Namespace) -> None:
    from pathlib import Path

    from nas.standalone import write_export

    check_writable(args.output)
    g = resolve_genotype(args.genotype)
    fmt = args.format or {".pt2": "pt2", ".onnx": "onnx"}.get(Path(args.output).suffix, "py")
    found_by = _found_by(args.genotype)
    files = write_export(g, args.output, fmt, args.weights, found_by, _export_info(args, g))
    c = searchspace.cost(g)
    print(f"exported {g.name or 'genotype'} ({c.madds / 1e6:.1f}M multiply-adds, "
          f"{c.params:,} parameters) to {', '.join(map(str, files))}", file=sys.stderr)


def _export_info(args: argparse.Namespace, g: searchspace.Genotype):
    """The images an export is for: --data, a checkpoint's record of them, or the data of
    the run folder it comes from; None when nothing names them."""
    from pathlib import Path

    from evaluators.data import DataInfo
    from nas.standalone import checkpoint_info

    if args.data or args.resize is not None:
        info = data_info(data_source(args))
        if info.num_classes != g.num_classes:
            raise UserError(f"{info.source} has {info.num_classes} classes, but the network "
                            f"has {g.num_classes} outputs: export the network trained on it "
                            "(its `nas train -o` checkpoint)")
        return info
    trained = args.weights or (args.genotype if Path(args.genotype).suffix in (".pt", ".pth")
                               else None)
    kept = checkpoint_info(trained) if trained else {}
    if not kept.get("classes"):  # the images a run folder searched, as its summary keeps them
        kept = _saved_images(Path(args.genotype))
    if not kept.get("classes") or len(kept["classes"]) != g.num_classes:
        return None
    return DataInfo(tuple(kept["classes"]), int(kept.get("side", g.resolution)),
                    tuple(kept["mean"]), tuple(kept["std"]), 0, 0, str(kept.get("data")))


def _saved_images(arg: Path) -> dict:
    """summary.json's record of the images of the run folder ``arg`` is (or is in); {}."""
    folder = arg if arg.is_dir() else arg.parent
    try:
        images = json.loads((folder / "summary.json").read_text()).get("images")
    except (OSError, ValueError, AttributeError):
        return {}
    return images if isinstance(images, dict) and images.get("mean") else {}


def _found_by(arg: str) -> str:
    from pathlib import Path

    summary = Path(arg) / "summary.json"
    if summary.is_file():
        try:
            return json.loads(summary.read_text()).get("found_by", "")
        except (OSError, ValueError):
            return ""
    if arg in searchspace.zoo.names():
        return f"hand-designed: {searchspace.zoo.SOURCES[arg][0]}"
    return ""


