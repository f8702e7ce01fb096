"""What a search leaves in its run folder: trials.csv, genotypes, model.py, plots, report.md."""

from __future__ import annotations

import csv
import json
import math
import platform
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch

import searchspace
from evaluators.recipe import load_profile
from nas.report_table import human, plain_log_axis
from nas.rescore import choose
from nas.standalone import write_export
from nas.tally import counts, failures
from nas.trial import Record, records

__all__ = ["write_outputs", "write_trials_csv", "environment", "command_line"]

# trials.csv's columns: Record fields (status: Record.label; a _pct column is the field, a
# fraction, in percent like every report), then the decisions
_COLUMNS = ["number", "status", "accuracy_pct", "worth_pct", "madds", "params", "latency_ms",
            "seconds", "images_per_s", "key", "reused_from", "rescore_of", "screened", "seed",
            "retry_of", "reason"]
_ROUNDED = {"seconds", "images_per_s"}


def environment() -> str:
    """Hardware and library versions, for every report's header. On a CPU, its model and the
    kernels torch picked for it: scores depend on them (AVX-512 rounds otherwise than AVX2)."""
    device = (torch.cuda.get_device_name(0) if torch.cuda.is_available()
              else f"CPU ({_cpu_model()}, {platform.machine()}, "
                   f"{torch.backends.cpu.get_cpu_capability()} kernels, "
                   f"{torch.get_num_threads()} threads)")
    return (f"{device}; torch {torch.__version__}, optuna {optuna.__version__}, "
            f"Python {platform.python_version()}")


def command_line(cfg) -> str:
    """The `nas search` that makes this run again (defaults resolved)."""
    from evaluators import known

    if not known(cfg.evaluator):
        return (f"nas.search(space={cfg.space!r}, evaluator={cfg.evaluator}, "
                f"budget={cfg.budget!r}, strategy={cfg.strategy!r}, trials={cfg.trials}, "
                f"seed={cfg.seed}) from Python")
    parts = ["nas search", *([f"--budget {cfg.budget}"] if cfg.budget else []),
             f"--strategy {cfg.strategy}", f"--space {cfg.space}",
             f"--evaluator {cfg.evaluator}", f"--seed {cfg.seed}"]
    parts += [f"--trials {cfg.trials}"] if cfg.trials else []
    parts += [f"--time {cfg.time_s:g}s"] if cfg.time_s else []
    parts += [] if cfg.scale else ["--no-scale"]
    parts += [f"--screen {cfg.screen} --screen-by {cfg.screen_by}"] if cfg.screen > 1 else []
    parts += [f"--rescore {cfg.rescore}"] if cfg.rescore else []
    parts += [f"--baselines {','.join(cfg.baselines) or repr('')}"] if cfg.baselines is not None \
        else []
    if cfg.data:  # the images decide every network's head and input side
        path, _, side = cfg.data.partition("?resize=")
        parts += [f"--data {shlex.quote(path)}"] + ([f"--resize {side}"] if side else [])
    return " ".join(parts)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown model"


@dataclass(frozen=True)
class Units:
    """How a run's scores read: accuracies in percent, or a Python evaluator's own scores
    under its name (nas.search with a function)."""

    name: str
    percent: bool = True

    def text(self, x: float) -> str:
        return f"{100 * x:.2f}%" if self.percent else f"{x:.4g}"

    def value(self, x: float) -> float:
        return 100 * x if self.percent else x

    @property
    def axis(self) -> str:
        return f"{self.name} (%)" if self.percent else self.name


def units(ev: Any) -> Units:
    """The units of ``ev``'s scores (None: an accuracy)."""
    if ev is None or ev.percent:
        return Units("validation accuracy")
    return Units(f"score ({ev.name})", percent=False)


def write_trials_csv(study: optuna.Study, path: Path, percent: bool = True) -> list[Record]:
    """One row per trial: status, accuracy (%; a Python evaluator's ``score`` as it is), cost,
    time, reason and the decisions."""
    trials = records(study)
    names = sorted({k for t in trials for k in t.decisions})
    columns = _COLUMNS if percent else \
        [{"accuracy_pct": "score", "worth_pct": "worth"}.get(c, c) for c in _COLUMNS]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(columns + names)
        for t in trials:
            w.writerow([_cell(t, c) for c in columns] + [t.decisions.get(n, "") for n in names])
    return trials


def _cell(t: Record, column: str) -> Any:
    if column == "status":
        return t.label
    column = {"score": "accuracy"}.get(column, column)
    field = column.removesuffix("_pct")
    value = getattr(t, field)
    if value is None:
        return ""
    if field != column:
        return round(100 * value, 4)  # 43.41, not 43.410000000000004
    if column == "latency_ms":
        return round(value, 4)
    return round(value, 2) if column in _ROUNDED else value


def _plots(trials: list[Record], best: Record, out: Path, worth: float, u: Units
           ) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scored = [t for t in trials if t.scored]
    xs = list(range(1, len(scored) + 1))
    running, curve = -math.inf, []
    for t in scored:
        running = max(running, t.values[0])
        curve.append(u.value(running))
    fig, ax = plt.subplots(figsize=(6.4, 4))
    ax.plot(xs, [u.value(t.values[0]) for t in scored], "o", color="0.7", ms=4, label="trial")
    ax.step(xs, curve, where="post", color="C0", lw=2, label="best so far")
    ax.set_xlabel("evaluated trial")
    ax.set_ylabel(u.axis)
    ax.set_title("Search progress")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out / "progress.png", dpi=120)
    plt.close(fig)
    _cost_plot(scored, best, out, worth, u)
    return ["progress.png", "accuracy_madds.png"]


def _cost_plot(scored: list[Record], best: Record, out: Path, worth: float, u: Units) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4))
    ax.scatter([t.madds / 1e6 for t in scored],
               [u.value(t.values[0]) for t in scored], s=18, color="C0", alpha=0.7,
               label="scored trial")
    ax.scatter([best.madds / 1e6], [u.value(worth)], s=160, marker="*",
               color="C3", zorder=3, label=f"winner (trial {best.number})")
    ax.set_xscale("log")
    plain_log_axis(ax.xaxis)
    ax.set_xlabel("multiply-adds (millions, log scale)")
    ax.set_ylabel(u.axis)
    ax.set_title(f"{u.name.capitalize()} against cost, every scored trial")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(out / "accuracy_madds.png", dpi=120)
    plt.close(fig)


def write_outputs(cfg, study: optuna.Study, best: Record | None,
                  scaled: tuple | None, ev: Any = None) -> dict:
    """Write the run folder's files; returns the summary printed by --json."""
    out = Path(cfg.out)
    u = units(ev)
    trials = write_trials_csv(study, out / "trials.csv", u.percent)
    c = counts(study)
    summary: dict[str, Any] = {"trials": {k: c[k] for k in ("complete", "rejected", "reused",
                                                             "failed", "retried", "rescored")},
                               "failures": failures(study), "out": str(out)}
    info = ev.data_info() if ev is not None else None
    summary.update(_images(cfg, info))
    if best is None:
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        return summary
    base, final, ratio = scaled
    choice = choose([t for t in trials if t.state.name == "COMPLETE"])
    base.to_yaml(out / "base.yaml")
    final.to_yaml(out / "best.yaml")
    fc = searchspace.cost(final)
    found_by = (f"{cfg.strategy} search over the {cfg.space} space, {c['complete']} scored "
                f"trials by {cfg.evaluator} (best {u.text(choice.mean)} {u.name} at "
                f"{best.madds / 1e6:.1f}M"
                + (f", the mean of {len(choice.scores)} trainings" if len(choice.scores) > 1
                   else "") + "), "
                + (f"compound-scaled to {cfg.budget}" if cfg.scale else "not scaled"))
    latency = _latency(cfg, final)
    if latency:
        from nas.latency_cmd import latency_text

        found_by += f"; latency {latency_text(latency, cfg.limits.latency_ms)}"
    write_export(final, out / "model.py", "py", None, found_by, info)
    plots = _plots(trials, best, out, choice.mean, u)
    summary["best"] = {"genotype": str(out / "best.yaml"), "madds": fc.madds,
                       "params": fc.params, "val_accuracy": choice.mean,
                       "trainings": list(choice.scores), "confidence": choice.confidence,
                       "base_genotype": str(out / "base.yaml"),
                       "base_madds": best.madds, "fill": ratio}
    if latency:
        summary["best"]["latency"] = latency
    found = ev.found(best.decisions, cfg.base_limits) if ev is not None else None
    if found is not None:  # a table's published row of the winner
        summary["best"]["table"] = found
    summary["best"]["split"] = best.split
    summary["found_by"] = found_by
    summary["seconds"] = round(time.time() - cfg.started, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "report.md").write_text(_report(cfg, choice, base, final, ratio, c, plots,
                                           summary, ev))
    return summary


def _images(cfg, info) -> dict:
    """summary.json's word on the images the run searched ({} when it trained on none)."""
    if info is None:
        return {}
    return {"images": {"data": info.source, "classes": list(info.classes), "side": info.side,
                       "train": info.train, "test": info.test, "mean": list(info.mean),
                       "std": list(info.std)}}


def _latency(cfg, g: searchspace.Genotype) -> dict | None:
    """Predicted and measured latency of ``g`` under a latency budget; None otherwise."""
    if not cfg.budget or cfg.limits.latency_ms is None:
        return None
    from nas.latency_cmd import latency_figures

    return latency_figures(g, cfg.limits.latency_on)


def _latency_lines(cfg, summary: dict) -> list[str]:
    from nas.latency_cmd import latency_text

    latency = summary["best"].get("latency")
    if not latency:
        return []
    return [f"Latency of the final network: "
            f"{latency_text(latency, cfg.limits.latency_ms)}.", ""]


def _report(cfg, choice, base: searchspace.Genotype, final: searchspace.Genotype,
            ratio: float | None, c: dict[str, int], plots: list[str], summary: dict,
            ev: Any) -> str:
    table = "table" in summary["best"]  # a table's published row of the winner
    u = units(ev)
    best = choice.record
    bc, fc = searchspace.cost(base), searchspace.cost(final)
    mode = " (reduced CPU search)" if cfg.reduced_cpu else ""
    # a pipe inside a table cell must be escaped, even in code (NAS-Bench-201's strings)
    cell = f" `{base.name}`".replace("|", "\\|") if base.name != "searched-base" else ""
    final_score = ("not scored: the table knows only the benchmark's own networks; "
                   if table else "not trained here; ") + _full_training(cfg, summary)
    if not cfg.budget:
        final_score = "the searched base itself (no budget to scale it to)"
    found = [ev.found_text(summary["best"]["table"], cfg.budget), ""] if table else []
    lines = [
        f"# Search report: {cfg.budget or 'no budget'}{mode}",
        "",
        *_evidence(cfg, c, summary),
        "",
        "## Result",
        "",
        f"| network | resolution | multiply-adds | parameters | {u.name} |",
        "|---|---:|---:|---:|---:|",
        f"| searched base{cell} (trial {best.number}) | {base.resolution} | "
        f"{human(bc.madds)} | {bc.params:,} | {u.text(choice.mean)} ({cfg.evaluator}"
        + (f", mean of {len(choice.scores)}" if len(choice.scores) > 1 else "") + ") |",
        f"| final: `best.yaml`, `model.py` | {final.resolution} | {human(fc.madds)} | "
        f"{fc.params:,} | {final_score} |",
        "",
        *_latency_lines(cfg, summary),
        choice.describe(cfg.evaluator, noisy=ev is None or ev.noisy, percent=u.percent),
        "",
        *found,
        (f"The base was searched under {100 * cfg.base_fraction:.1f}% of the budget"
         + (f" ({100 * cfg.base_fraction ** 0.5:.0f}% of its latency: latency falls more "
            "slowly than multiply-adds)" if cfg.limits.latency_ms is not None else "")
         + " and "
         f"compound-scaled (EfficientNet's alpha 1.2, beta 1.1, gamma 1.15) to "
         f"{100 * ratio:.1f}% of it." if ratio is not None else
         "The winner was searched at the full budget and not scaled (--no-scale)."
         if cfg.budget else "Searched without a budget: the space's networks as they are."),
        "",
        "## Plots",
        "",
        *[f"![{p}]({p})" for p in plots],
        "",
        "",
    ]
    return "\n".join(lines)


def _evidence(cfg, c: dict[str, int], summary: dict) -> list[str]:
    """The report's header list: the command, what the trials came to, time, hardware."""
    return [
        f"- command: `{command_line(cfg)}`",
        f"- trials: {c['complete']} scored, {c['rejected']} rejected over budget (never "
        f"trained), {c['reused']} proposals of networks scored already (their result reused, "
        f"never trained twice), {c['failed']} failed, {c['retried']} queued again (worker "
        f"died or stopped), {c['rescored']} trainings of the best again for the final choice; "
        f"{cfg.workers} worker(s)",
        *(["- failures by reason: " + ", ".join(f"{k} {v}" for k, v in
                                                  summary["failures"].items())]
          if summary["failures"] else []),
        *([f"- screening: each trial trained the first of up to {cfg.screen} new proposals "
           f"ranked by the zero-cost `{cfg.screen_by}` (`--screen {cfg.screen}`)"]
          if cfg.screen > 1 else []),
        *([f"- images: {summary['images']['data']} "
           f"({len(summary['images']['classes'])} classes, {summary['images']['side']}x"
           f"{summary['images']['side']} pixels, {summary['images']['train']:,} training "
           f"images); every network built for them"] if "images" in summary else []),
        f"- search wall time: {summary['seconds'] / 60:.1f} min; {environment()}",
        f"- date: {time.strftime('%Y-%m-%d %H:%M', time.localtime(cfg.started))}",
    ]


def _full_training(cfg, summary: dict) -> str:
    """The command that trains the final network, runnable from where the search was started
    (the run folder as typed), and what it costs: the user should not start it on a CPU."""
    epochs = load_profile("full").epochs
    path = shlex.quote(str(Path(cfg.out) / "best.yaml"))
    data = f" --data {shlex.quote(summary['images']['data'])}" if "images" in summary else ""
    count = summary["images"]["train"] if "images" in summary else 50_000
    return (f"`nas train {path} --profile full{data}` trains it: a GPU job ({epochs:g} epochs "
            f"over all {count:,} training images; hours on a CPU)")
