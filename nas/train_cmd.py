"""`nas train`: train one genotype by a profile, print progress, save a checkpoint."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

import searchspace
from evaluators.data import cache_dir, fingerprint
from evaluators.proxy import ProxyEvaluator
from evaluators.recipe import Recipe, check_device, load_profile, profile_names
from evaluators.train import EpochLog
from nas import flags
from nas.errors import UserError
from nas.for_data import add_data_flags, data_source, fitted
from nas.genotypes import resolve_genotype
from nas.paths import check_writable

__all__ = ["register", "default_profile", "save_checkpoint"]


def default_profile() -> str:
    """The profile a user gets without --profile: proxy-gpu on CUDA, proxy-cpu otherwise."""
    return "proxy-gpu" if torch.cuda.is_available() else "proxy-cpu"


def register(sub: argparse._SubParsersAction) -> None:
    """Add `nas train` to the CLI."""
    s = sub.add_parser("train", help="train a genotype by a profile and report its accuracy")
    s.add_argument("genotype", help="zoo name, YAML file or run folder")
    s.add_argument("--profile", default=None,
                   help=f"{', '.join(profile_names())} or a YAML path "
                        "(default: proxy-gpu on a GPU, else proxy-cpu)")
    add_data_flags(s)
    s.add_argument("--epochs", type=flags.finite, help="override the profile's epochs")
    s.add_argument("--seed", type=flags.seed, default=0,
                   help=f"training seed, 0 to {flags.MAX_SEED:,} (default: 0)")
    s.add_argument("--device", type=flags.device,
                   help="cpu or cuda (default: the profile's, else CUDA if present)")
    s.add_argument("-o", "--output", help="write a checkpoint (state_dict and genotype) here")
    s.add_argument("--state", help="where the training keeps its state, so that the same "
                                   "command resumes it after SIGINT, SIGTERM or a crash "
                                   "(default: OUTPUT.state with -o, else in the cache folder)")
    s.add_argument("--json", action="store_true", help="print one final JSON line")
    s.set_defaults(run=_run)


def _progress(log: EpochLog) -> None:
    print(f"epoch {log.epoch}/{log.epochs}  loss {log.loss:.3f}  "
          f"train acc {100 * log.train_accuracy:.1f}%  {log.images_per_s:,.0f} img/s  "
          f"{log.elapsed:.0f}s elapsed, ~{log.eta:.0f}s left", file=sys.stderr, flush=True)


def save_checkpoint(path: str | Path, model: torch.nn.Module, g: searchspace.Genotype,
                    info: dict) -> None:
    """state_dict + genotype YAML + what was measured, in one torch.save file."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, "genotype": g.to_yaml(), "info": info}, path)


def _state_path(args: argparse.Namespace, g: searchspace.Genotype, recipe: Recipe,
                ev: ProxyEvaluator) -> Path:
    """--state, else beside -o, else in the cache folder under what the numbers depend on."""
    from nas.compare import recipe_key  # what of a recipe changes a result, as a short key

    if args.state:
        return Path(args.state)
    if args.output:
        return Path(f"{args.output}.state")
    name = f"{g.key()}-{recipe.name}-{recipe_key(recipe)}-{ev.split.eval_name}-s{args.seed}-"
    return cache_dir() / "train" / f"{name}{fingerprint(data_source(args))}.state"


def _run(args: argparse.Namespace) -> None:
    if args.output:
        check_writable(args.output)
    if args.state:
        check_writable(args.state)
    g = resolve_genotype(args.genotype)
    recipe = load_profile(args.profile or default_profile())
    if args.epochs is not None:
        if args.epochs <= 0:
            raise UserError("--epochs must be positive")
        recipe = recipe.replace(epochs=args.epochs)
    if args.device is None:
        check_device(recipe.device, recipe.name)
    data = data_source(args)
    ev = ProxyEvaluator(recipe, data=data, device=args.device, progress=_progress)
    images = ev.data_info()  # load (and cache) the data before timing, and fail before training
    g, note = fitted(args.genotype, g, images)
    if note:
        print(note, file=sys.stderr)
    c = searchspace.cost(g)
    print(f"training {g.name or 'genotype'} ({c.madds / 1e6:.1f}M multiply-adds, "
          f"{c.params:,} parameters) by {recipe.name} on {ev.device}"
          + (f", as a reduced copy: {recipe.reduction()}" if recipe.reduction() else ""),
          file=sys.stderr)
    state = _state_path(args, g, recipe, ev)
    if state.is_file():
        print(f"resuming the training saved in {state}", file=sys.stderr)
    result = ev.train(g, args.seed, state=state)
    key = "val_accuracy" if recipe.split == "search" else "test_accuracy"
    info = {key: result.accuracy, "madds": c.madds, "params": c.params,
            "seconds": round(result.seconds, 2), "epochs": round(result.epochs, 3),
            "device": result.device, "images_per_s": round(result.images_per_s, 1),
            "profile": recipe.name, "seed": args.seed, "name": g.name,
            "data": images.source, "classes": list(images.classes), "side": images.side,
            "mean": list(images.mean), "std": list(images.std), "transferred": note}
    if args.output:
        save_checkpoint(args.output, result.model, ev.trained_genotype(g), info)
    state.unlink(missing_ok=True)  # the result is kept: a rerun trains again
    where = "validation" if recipe.split == "search" else "test"
    print(f"{where} accuracy {100 * result.accuracy:.2f}% after {result.seconds:.1f}s "
          f"({result.images_per_s:,.0f} img/s)" +
          (f"; checkpoint written to {args.output}" if args.output else ""), file=sys.stderr)
    if args.json:
        print(json.dumps(info))
