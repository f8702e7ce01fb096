"""What the 600M campaign runs, in which order, and how long each piece should take on a GPU.

A piece is one `nas` command that resumes when it is run again: the search (`nas search`,
then `nas search --resume`), one `nas compare` per network (both seeds, the scaled copy with
it), and the report (`nas compare` over everything, from its cache). Minutes are predicted
from the throughput measured on an H100 (results/gpu/report.md, table 1) and corrected by
what this campaign's own trainings measured.
"""

from __future__ import annotations

import csv
import json
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import searchspace
from evaluators.recipe import Recipe, load_profile

__all__ = ["Setup", "Piece", "real_setup", "dry_run_setup", "pieces", "Rates", "predict",
           "state_mb"]

ROOT = Path(__file__).resolve().parents[1]
# H100, bf16, the product's train() with CUDA graphs (results/gpu/report.md, table 1): FLOPs
# a second, counting 6 x multiply-adds a training image. Dense 3x3 networks: resnet20 25.5,
# resnet56 29.8 TFLOP/s; depthwise ones: mobilenetv2 13.7, the 600M CPU winner 13.7, cells 11.5.
MEASURED = {"dense": 27.6e12, "depthwise": 13.0e12}
START_S = 4.0  # a training's fixed cost: build, data to the device, warm-up, capture, scoring
TRIAL_S = 2.0  # a search trial's bookkeeping beyond its training (study, logging)


@dataclass(frozen=True)
class Setup:
    """The campaign's experiment: the real one, or the CPU rehearsal (`--dry-run`)."""

    name: str
    budget: str
    search: tuple[str, ...]  # `nas search` arguments beyond --budget and --out
    search_trials: int
    search_compared: int  # baselines its proxy comparison trains after it
    search_profile: str  # the evaluator the search trains with (for predictions)
    profile: str  # the final recipe
    seeds: int
    baselines: tuple[str, ...]
    stand_in: Path  # a network like the one the search will find, to predict before it has
    margin_s: float  # stop this long before the deadline: state saved, archive packed
    report_s: float  # kept before the margin for the report (latencies, plots)
    min_start_s: float  # start no piece with less time left than this


BASELINES = ("resnet18", "resnet56", "resnet110", "mobilenetv2", "efficientnet_b0",
             "densenet100", "vgg16")


REAL, DRY_RUN = "600M on a GPU", "dry run on the CPU"  # the setups' names


def real_setup(profiles: Path, probe: Path | None = None, write: bool = True) -> Setup:
    """The 600M experiment: the search with a GPU's defaults, `full` twice a network. Its
    recipes are the shipped proxy-gpu and full, copied to ``profiles`` on the first call
    with the layout (and, for full, the compilation) gpu_probe.py found fastest, and kept
    from then on: every network of a campaign trains by the same recipe. Without ``write``
    (a plan), the shipped ones stand in for copies not made yet."""
    settings = _probe_settings(probe)
    for name, keys in (("proxy-gpu", ("channels_last",)), ("full", ("channels_last", "compile"))):
        target = profiles / f"{name}.yaml"
        if target.is_file() or not write:
            continue
        profiles.mkdir(parents=True, exist_ok=True)
        text = (ROOT / "evaluators" / "profiles" / f"{name}.yaml").read_text()
        extra = [f"{k}: {str(settings[k]).lower()}" for k in keys if k in settings]
        if extra:
            text += (f"# the campaign's copy; from {probe}: the fastest settings measured\n"
                     + "\n".join(extra) + "\n")
        target.write_text(text)
    proxy, full = (str(profiles / f"{n}.yaml") if (profiles / f"{n}.yaml").is_file() else n
                   for n in ("proxy-gpu", "full"))
    return Setup(REAL, "600M-madds", ("--seed", "0", "--evaluator", proxy), 100, 8,
                 proxy, full, 2, BASELINES,
                 ROOT / "results" / "cpu-search-600M" / "best.yaml", 30.0, 45.0, 60.0)


def _probe_settings(probe: Path | None) -> dict:
    """gpu_probe.py's fastest recipe settings, or nothing when there is no probe."""
    if probe is None:
        return {}
    try:
        fastest = json.loads(probe.read_text())["fastest"]
        return {k: bool(fastest[k]) for k in ("channels_last", "compile")}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{probe} is not a gpu_probe.py result ({exc})") from None


def dry_run_setup(profiles: Path) -> Setup:
    """The same campaign, shrunk to a CPU minute or two: tiny recipes written to ``profiles``
    (1,000 test images scored), an 8M budget searched without scaling, one baseline."""
    profiles.mkdir(parents=True, exist_ok=True)
    (profiles / "tiny-proxy.yaml").write_text(
        "split: search\nepochs: 1\ntrain_subset: 384\nbatch_size: 64\nlr: 0.1\n"
        "resolution: 16\ntime_limit: 60\ndevice: cpu\n")
    (profiles / "tiny-full.yaml").write_text(
        "split: final\nepochs: 0.05\nbatch_size: 64\nlr: 0.1\nema: 0.9\ntta_flip: true\n"
        "eval_subset: 1000\ndevice: cpu\n")
    proxy = str(profiles / "tiny-proxy.yaml")
    return Setup(DRY_RUN, "8M-madds",
                 ("--seed", "0", "--evaluator", proxy, "--trials", "4", "--baselines",
                  "resnet20", "--no-scale"), 4, 1, proxy, str(profiles / "tiny-full.yaml"), 2,
                 ("resnet20",), ROOT / "results" / "cpu-search-600M" / "best.yaml",
                 5.0, 15.0, 3.0)


@dataclass(frozen=True)
class Piece:
    """One resumable command of the campaign: the search, one training (a network, a seed)
    of the comparison, or the report. It starts once the pieces it needs are done."""

    name: str
    first: tuple[str, ...]  # `nas` arguments of its first run
    again: tuple[str, ...]  # of a run that continues it
    needs: tuple[str, ...]  # pieces whose trainings its command finds in the cache
    network: searchspace.Genotype | None = None  # what it trains by the final recipe
    kind: str = "train"  # "search", "train" or "report"
    resumes_if: Path | None = None  # ``again`` runs once this file exists, else ``first``


def pieces(setup: Setup, work: Path, data: str | None) -> list[Piece]:
    """The campaign in order: the search; then, a seed at a time, the found network and each
    baseline (as it is, then compound-scaled to the budget), so a table of one seed is whole
    before the second seed starts; the report from what is trained. Each training piece runs
    `nas compare` with the seeds up to its own, so it trains exactly one network once; the
    rest comes from the comparison's cache."""
    from nas.budget import parse_budget
    from nas.compare import entries_for

    d = ("--data", data) if data else ()
    run = work / "searched"
    common = ("--profile", setup.profile, "-o", str(work / "compare"), *d)
    search = ("search", "--budget", setup.budget, "--out", str(run), *setup.search, *d)
    out = [Piece("search", search, ("search", "--resume", str(run), *d), (),
                 kind="search", resumes_if=run / "config.json")]
    found = _found(run, setup)
    limits = parse_budget(setup.budget).limits
    scaled = {b: entries_for([], [b], limits, setup.budget) for b in setup.baselines}

    def earlier(name: str, seed: int) -> tuple[str, ...]:
        return (f"{name} seed {seed - 1}",) if seed else ()

    for seed in range(setup.seeds):  # a whole table of one seed before the next seed
        argv = ("compare", str(run), "--baselines", "", "--seeds", str(seed + 1), *common)
        out.append(Piece(f"found seed {seed}", argv, argv, ("search", *earlier("found", seed)),
                         found))
        for b, nets in scaled.items():  # the scaled copy, when it differs, after the original
            for e, extra in zip(nets, ((), ("--budget", setup.budget))):
                argv = ("compare", "--baselines", b, *extra, "--seeds", str(seed + 1), *common)
                # `--baselines b --seeds k` trains b's seeds below k, the scaled copy's too
                needs = earlier(e.name, seed) + ((f"{b} seed {seed}",) if extra else ())
                out.append(Piece(f"{e.name} seed {seed}", argv, argv, needs, e.genotype))
    report = ("compare", str(run), "--baselines", ",".join(setup.baselines), "--budget",
              setup.budget, "--seeds", str(setup.seeds), "--report-only", *common)
    out.append(Piece("report", report, report, (), kind="report"))
    return out


def _found(run: Path, setup: Setup) -> searchspace.Genotype:
    """The search's network once it has one, else the stand-in (a network like it)."""
    best = run / "best.yaml"
    return searchspace.Genotype.from_yaml(best if best.is_file() else setup.stand_in)


def state_mb(g: searchspace.Genotype) -> float:
    """Megabytes of a training's saved state: weights, momentum and weight average (fp32)."""
    return 3 * 4 * searchspace.cost(g).params / 1e6


def _depthwise(g: searchspace.Genotype) -> bool:
    from torch import nn

    return any(isinstance(m, nn.Conv2d) and m.groups > 1
               for m in searchspace.build(g).modules())


@dataclass
class Rates:
    """Training FLOP/s by kind of network: the H100's measured ones until this campaign's
    own trainings say otherwise (their median, from the comparison's cache)."""

    flops: dict[str, float] = field(default_factory=lambda: dict(MEASURED))
    trial_s: float | None = None  # the search's measured seconds a trial
    source: dict[str, str] = field(default_factory=lambda: dict.fromkeys(MEASURED, "H100"))

    def learn(self, work: Path, networks: Iterable[searchspace.Genotype]) -> None:
        """Read the campaign's measurements so far: trainings of ``networks`` in the compare
        cache, trials in the search's trials.csv."""
        costs = {g.key(): (searchspace.cost(g).madds, _depthwise(g)) for g in networks}
        seen: dict[str, list[float]] = {"dense": [], "depthwise": []}
        for path in (work / "compare" / "cache").glob("*-s[0-9]*-*.json"):
            madds, dw = costs.get(path.name.split("-")[0], (0, False))
            try:
                speed = json.loads(path.read_text()).get("images_per_s")
            except (OSError, ValueError, AttributeError):
                continue
            if madds and speed:
                seen["depthwise" if dw else "dense"].append(6 * madds * speed)
        for kind, values in seen.items():
            if values:
                self.flops[kind] = statistics.median(values)
                self.source[kind] = f"this campaign ({len(values)} training(s))"
        trials = work / "searched" / "trials.csv"
        if trials.is_file():
            with trials.open() as f:
                secs = [float(r["seconds"]) for r in csv.DictReader(f)
                        if r.get("status") in ("ok", "rescored") and r.get("seconds")]
            if secs:
                self.trial_s = statistics.mean(secs) + TRIAL_S

    def train_s(self, g: searchspace.Genotype, recipe: Recipe, images: int) -> float:
        """Predicted seconds to train ``g`` by ``recipe`` on ``images`` training images."""
        kind = "depthwise" if _depthwise(g) else "dense"
        flops = 6 * searchspace.cost(g).madds * recipe.epochs * images
        return START_S + flops / self.flops[kind]


def predict(setup: Setup, piece: Piece, rates: Rates) -> float:
    """Seconds ``piece`` should take from its start, on the GPU the rates describe."""
    if piece.kind == "search":
        recipe = load_profile(setup.search_profile)
        base = searchspace.Genotype.from_yaml(setup.stand_in)  # a candidate like the found
        from nas.budget import parse_budget

        fraction = parse_budget(setup.budget).limits.madds / 4 / searchspace.cost(base).madds
        g = searchspace.scale(base, width=fraction ** 0.5)  # about the base budget
        per = rates.trial_s or rates.train_s(g, recipe, _images(recipe)) + TRIAL_S
        return (setup.search_trials + setup.search_compared) * per
    if piece.kind == "report":
        return 60.0  # latencies and plots
    recipe = load_profile(setup.profile)
    return rates.train_s(piece.network, recipe, _images(recipe))


def _images(recipe: Recipe) -> int:
    """Training images a pass: CIFAR-10's 50,000 (final) or 45,000 (search), or the subset."""
    n = 50_000 if recipe.split == "final" else 45_000
    return min(n, recipe.train_subset) if recipe.train_subset else n
