"""Discovered versus hand-designed, trained the same way: table, Pareto plots, report.

Every network is trained by one recipe on the same data, split and seeds. Each (genotype key,
recipe, seed, data) result is cached in the output folder, so a rerun retrains nothing and
an interrupted comparison resumes where it stopped, the training in flight from its last
step (its state beside the cache entry); a profile whose fields changed under the same name
trains again.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

import searchspace
from evaluators.data import DataInfo, fingerprint
from evaluators.proxy import ProxyEvaluator
from evaluators.recipe import HOW_IT_RUNS, Recipe
from nas.report_table import human, images, plain_log_axis

__all__ = ["Entry", "Row", "compare", "pareto", "DEFAULT_BASELINES", "write_report",
           "reporting_evaluator"]

DEFAULT_BASELINES = ("resnet20", "resnet56", "resnet110", "mobilenetv2", "densenet100", "vgg16",
                     "inception", "efficientnet_b0")


@dataclass(frozen=True)
class Entry:
    """A network to compare."""

    name: str
    genotype: searchspace.Genotype
    discovered: bool  # found by a search (highlighted), or hand-designed


@dataclass
class Row:
    """One network's measurements, over seeds."""

    name: str
    discovered: bool
    madds: int
    params: int
    resolution: int
    accuracy: float  # mean over seeds
    accuracy_std: float | None  # None with one seed: no spread was measured
    seeds: int
    seconds: float  # mean training time, seconds
    latency_ms: dict[str, float]  # "cpu_b1", "cpu_b256", and "cuda_b1", "cuda_b256"
    pareto: bool = False
    key: str = ""


def _cache_path(folder: Path, g: searchspace.Genotype, ev: ProxyEvaluator, seed: int,
                data_key: str) -> Path:
    part = ev.split.eval_name  # "holdout", "val" or "test": a score is of its images
    return folder / "cache" / (f"{g.key()}-{ev.recipe.name}-{recipe_key(ev.recipe)}-{part}-"
                               f"s{seed}-{data_key}.json")


def recipe_key(recipe: Recipe) -> str:
    """A short hash of what in ``recipe`` changes a comparison's result: the fields away from
    their defaults (a new field at its default keeps old keys), less the time guard, which a
    comparison never applies, and how the loop runs (layout, compilation)."""
    changed = {f.name: float(v) if isinstance(v, int) and not isinstance(v, bool) else v
               for f in fields(recipe)
               if f.name not in HOW_IT_RUNS
               and (v := getattr(recipe, f.name)) != f.default}
    return hashlib.sha256(json.dumps(changed, sort_keys=True).encode()).hexdigest()[:8]


def reporting_evaluator(recipe: Recipe, data: Any, device: Any = None) -> ProxyEvaluator:
    """The evaluator a comparison reports by: a search profile scores on the validation
    images held out from every search, a final one on the test images."""
    return ProxyEvaluator(recipe, data=data, device=device, reporting=True)


def _train_cached(ev: ProxyEvaluator, g: searchspace.Genotype, seed: int, folder: Path,
                  data_key: str) -> dict[str, Any]:
    path = _cache_path(folder, g, ev, seed, data_key)
    cached = _read_cache(path)
    if cached is not None:
        return cached
    state = path.with_suffix(".state")  # the training in flight, resumed by a rerun
    result = ev.train(g, seed, state=state)
    record = {"accuracy": result.accuracy, "seconds": result.seconds,
              "images_per_s": result.images_per_s, "device": result.device,
              "split": ev.recipe.split}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    tmp.replace(path)  # whole or not at all, then the state goes
    state.unlink(missing_ok=True)
    return record


def _read_cache(path: Path) -> dict[str, Any] | None:
    """A cached record, or None when it is missing or damaged (a run killed while writing
    it, a full disk): it is measured again instead of failing as a traceback."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@torch.no_grad()
def latency(g: searchspace.Genotype, device: str, batch: int) -> float:
    """Median milliseconds of one forward pass at ``batch`` (eval mode, channels_last)."""
    model = searchspace.build(g).eval().to(device, memory_format=torch.channels_last)
    x = torch.randn(batch, 3, g.resolution, g.resolution, device=device).contiguous(
        memory_format=torch.channels_last)
    cuda = device == "cuda"
    reps = 20 if cuda or batch == 1 else 3
    times = []
    for i in range(reps + 2):
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            model(x)
        if cuda:
            torch.cuda.synchronize()
        if i >= 2:  # warm-up first
            times.append(1e3 * (time.perf_counter() - start))
    return statistics.median(times)


def _latencies(g: searchspace.Genotype, folder: Path) -> dict[str, float]:
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    path = folder / "cache" / f"{g.key()}-latency-{'-'.join(devices)}.json"
    cached = _read_cache(path)
    if cached is not None:
        return cached
    out = {f"{d}_b{b}": round(latency(g, d, b), 3) for d in devices for b in (1, 256)}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out))
    return out


def pareto(rows: list[Row]) -> None:
    """Mark rows no other row beats on both accuracy (higher) and multiply-adds (lower)."""
    for r in rows:
        r.pareto = not any(o is not r and o.accuracy >= r.accuracy and o.madds <= r.madds and
                           (o.accuracy > r.accuracy or o.madds < r.madds) for o in rows)


def compare(entries: list[Entry], ev: ProxyEvaluator, seeds: int, folder: Path,
            log=print, train: bool = True, missing: list[str] | None = None) -> list[Row]:
    """Train every entry ``seeds`` times (cached) and measure it; rows sorted by cost.

    Without ``train``, only what the cache holds: a network none of whose seeds has been
    trained gets no row, and each training not done yet is named in ``missing``."""
    folder.mkdir(parents=True, exist_ok=True)
    data_key = fingerprint(ev.data)
    rows = []
    total = len(entries) * seeds
    done = 0
    paces: list[float] = []  # seconds of the trainings this run did (cached ones take none)
    for e in entries:
        records = []
        for seed in range(seeds):
            path = _cache_path(folder, e.genotype, ev, seed, data_key)
            cached = path.is_file()
            done += 1
            if not cached and not train:
                if missing is not None:
                    missing.append(f"{e.name} seed {seed}")
                continue
            if not cached and path.with_suffix(".state").is_file():
                log(f"resuming {e.name} seed {seed} from {path.with_suffix('.state')}")
            start = time.perf_counter()
            records.append(_train_cached(ev, e.genotype, seed, folder, data_key))
            if not cached:
                paces.append(time.perf_counter() - start)
            note = "cached" if cached else f"{paces[-1]:.0f}s" + _left(paces, total - done)
            log(f"[{done}/{total}] {e.name} seed {seed}: {100 * records[-1]['accuracy']:.2f}% "
                f"on {images(ev.split.eval_name)} ({note})")
        if records:
            rows.append(_row(e, records, folder))
    rows.sort(key=lambda r: r.madds)
    pareto(rows)
    return rows


def _left(paces: list[float], remaining: int) -> str:
    """About how long the trainings left take, at the pace of those done (none when none
    are left)."""
    if not remaining:
        return ""
    return f"; about {remaining * statistics.mean(paces) / 60:.0f} min left at this pace"


def _row(e: Entry, records: list[dict[str, Any]], folder: Path) -> Row:
    c = searchspace.cost(e.genotype)
    accs = [r["accuracy"] for r in records]
    return Row(e.name, e.discovered, c.madds, c.params, e.genotype.resolution,
               statistics.mean(accs), statistics.stdev(accs) if len(accs) > 1 else None,
               len(records), statistics.mean(r["seconds"] for r in records),
               _latencies(e.genotype, folder), key=e.genotype.key())


def _plot(rows: list[Row], x: str, path: Path, xlabel: str, ylabel: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scale = 1e6  # plot millions
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for discovered, color, marker, label in ((False, "0.45", "o", "hand-designed"),
                                             (True, "C3", "*", "discovered")):
        pts = [r for r in rows if r.discovered == discovered]
        if pts:  # no bar where one seed measured no spread (NaN draws nothing)
            ax.errorbar([getattr(r, x) / scale for r in pts], [100 * r.accuracy for r in pts],
                        yerr=[100 * r.accuracy_std if r.accuracy_std is not None
                              else float("nan") for r in pts], fmt=marker, color=color,
                        ms=13 if discovered else 7, capsize=3, label=label, zorder=3)
    front = sorted((r for r in rows if r.pareto), key=lambda r: getattr(r, x))
    if x == "madds" and len(front) > 1:
        ax.step([r.madds / scale for r in front], [100 * r.accuracy for r in front], where="post",
                color="C0", lw=1.2, alpha=0.8, label="Pareto front", zorder=2)
    for r in rows:
        ax.annotate(r.name, (getattr(r, x) / scale, 100 * r.accuracy), textcoords="offset points",
                    xytext=(6, 4), fontsize=8, color="C3" if r.discovered else "0.2")
    ax.set_xscale("log")
    plain_log_axis(ax.xaxis)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="best", fontsize=8)
    ax.margins(x=0.3, y=0.15)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def write_report(rows: list[Row], recipe: Recipe, data: str | None, seeds: int,
                 wall: float, folder: Path, environment: str, command: str,
                 missing: list[str] | None = None, info: DataInfo | None = None,
                 notes: list[str] | None = None) -> dict:
    """report.md, pareto.png, params.png and results.json in ``folder``; ``missing`` names the
    trainings not done yet (a report written from the cache); ``info``: what the images are;
    ``notes``: lines on networks made for another dataset (transferred)."""
    metric = ("test" if recipe.split == "final" else
              "held-out validation" if recipe.holdout else "validation")
    ylabel = f"{metric} accuracy (%)"
    kind = "final" if recipe.split == "final" else "search-proxy"
    _plot(rows, "madds", folder / "pareto.png", "multiply-adds (millions, log scale)", ylabel,
          f"Accuracy against multiply-adds ({recipe.name}, {kind} recipe)")
    _plot(rows, "params", folder / "params.png", "parameters (millions, log scale)", ylabel,
          f"Accuracy against parameters ({recipe.name}, {kind} recipe)")
    results = {"recipe": asdict(recipe), "data": data, "seeds": seeds, "wall_s": round(wall, 1),
               "images": asdict(info) if info else None, "transferred": notes or [],
               "train_s": round(_train_seconds(rows), 1), "environment": environment,
               "rows": [asdict(r) for r in rows], "missing": missing or []}
    (folder / "results.json").write_text(json.dumps(results, indent=2))
    lat = sorted({k for r in rows for k in r.latency_ms})
    lines = [*_report_head(recipe, data, seeds, wall, rows, environment, command, metric, kind,
                           info),
             *([*(f"- transferred: {n}" for n in notes), ""] if notes else []),
             *([f"**Not trained yet** ({len(missing)}): {', '.join(missing)}.", ""]
               if missing else []),
             *_latency_caveat(lat),
             *_table(rows, seeds, metric, lat)]
    lines += ["", "![accuracy against multiply-adds](pareto.png)", "",
              "![accuracy against parameters](params.png)", ""]
    (folder / "report.md").write_text("\n".join(lines))
    return results


def _report_head(recipe: Recipe, data: str | None, seeds: int, wall: float, rows: list[Row],
                 environment: str, command: str, metric: str, kind: str,
                 info: DataInfo | None) -> list[str]:
    """The report's title and its evidence: command, recipe, images, seeds, hardware, time."""
    return [
        f"# Discovered versus hand-designed ({recipe.name})",
        "",
        f"- command: `{command}`",
        f"- recipe: `{recipe.name}` ({kind}: {recipe.epochs:g} epoch(s)"
        + (f" over {recipe.train_subset:,} images" if recipe.train_subset else "")
        + f", batch {recipe.batch_size}, lr {recipe.lr}"
        + (f"; trained as a reduced copy: {recipe.reduction()}" if recipe.reduction() else "")
        + f"); accuracy on the {metric} images"
        + (f" ({recipe.eval_subset:,} of them: a smoke check)" if recipe.eval_subset else "")
        + ("" if recipe.split == "final" else
           f" (the {100 * recipe.holdout:.0f}% of the validation images no search chooses "
           "by) - a short proxy run, "
           "not a final accuracy: rankings, not absolute numbers"),
        f"- data: {info.source if info else data or 'CIFAR-10 (default source)'}"
        + (f" ({info.words()})" if info else "") + f"; seeds: {seeds} "
        + ("(mean +- standard deviation)" if seeds > 1 else "(one training each: no spread)"),
        f"- hardware and versions: {environment}",
        _time_line(rows, wall),
        "",
        "Rows sorted by multiply-adds; **P** marks the Pareto-optimal rows (no other row is "
        "both cheaper and more accurate); discovered networks are in bold.",
        "",
    ]


def _table(rows: list[Row], seeds: int, metric: str, lat: list[str]) -> list[str]:
    """One row a network: cost, accuracy (mean +- sd), training seconds, latencies."""
    lines = ["| | network | multiply-adds | parameters | res | " + f"{metric} acc (%) | " +
             "train s | " + " | ".join(f"{k} ms" for k in lat) + " |",
             "|" + "---|" * (6 + len(lat)) + "---|"]
    for r in rows:
        name = f"**{r.name}**" if r.discovered else r.name
        lines.append(
            f"| {'P' if r.pareto else ''} | {name} | {human(r.madds)} | {r.params:,} | "
            f"{r.resolution} | {_mean_spread(r, seeds)} | "
            f"{r.seconds:.1f} | " + " | ".join(f"{r.latency_ms[k]:.2f}" if k in r.latency_ms
                                              else "-" for k in lat)
            + " |")
    return lines


def _mean_spread(r: Row, seeds: int) -> str:
    """A row's accuracy in %: mean +- sd over its seeds, no spread from one seed (none was
    measured), and how many of ``seeds`` when some are missing."""
    text = f"{100 * r.accuracy:.2f}"
    if r.accuracy_std is not None:
        text += f" +- {100 * r.accuracy_std:.2f}"
    if r.seeds < seeds:
        text += f" ({r.seeds} of {seeds} seeds)"
    return text


def _train_seconds(rows: list[Row]) -> float:
    """The trainings' own measured seconds, summed over networks and seeds (those read from
    the cache included: a rerun costs nothing but its results did)."""
    return sum(r.seconds * r.seeds for r in rows)


def _time_line(rows: list[Row], wall: float) -> str:
    return (f"- time: the trainings took {_train_seconds(rows) / 60:.1f} min (each one's own "
            f"measured seconds, summed, cached ones included); this run's wall time "
            f"{wall / 60:.1f} min (a result read from the cache costs nothing)")


def _latency_caveat(lat: list[str]) -> list[str]:
    """CPU timings share the machine with everything else on it: say so beside them."""
    if not any(k.startswith("cpu_") for k in lat):
        return []
    return ["CPU latencies are medians of a few passes on a shared machine: on a busy one they "
            "swing up to 100x between runs, so rank by multiply-adds and treat them as rough.",
            ""]


def entries_for(found: list[tuple[str, searchspace.Genotype]], baselines: list[str],
                budget: searchspace.Limits | None, budget_text: str = "",
                info: DataInfo | None = None) -> list[Entry]:
    """The found networks, the baselines (built for the images ``info`` describes), and (with
    a budget) the baselines scaled to it."""
    from nas.for_data import zoo_for
    from nas.scaling import scale_to_budget

    out = [Entry(name, g, True) for name, g in found]
    for name in baselines:
        g = zoo_for(name, info)
        out.append(Entry(name, g, False))
        if budget:
            scaled = scale_to_budget(g, budget).genotype
            out.append(Entry(f"{name}@{budget_text}", scaled, False))
    seen, unique = set(), []
    for e in out:  # the same architecture twice is trained once
        if e.genotype.key() not in seen:
            seen.add(e.genotype.key())
            unique.append(e)
    return unique


def log_stderr(line: str) -> None:
    """Progress lines go to stderr so --json stays one clean line on stdout."""
    print(line, file=sys.stderr, flush=True)
