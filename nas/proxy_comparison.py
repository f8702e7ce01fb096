"""The searched winner against hand-designed networks at its budget, by the search's proxy.

Each baseline is compound-scaled to the base budget (or kept as is, when it fits), trained by
the same recipe as every trial and scored on the validation images no trial was scored on;
the table goes into the run's report and ``compare/``.
"""

from __future__ import annotations

import time
from pathlib import Path

import searchspace
from evaluators import ProxyEvaluator
from nas.config import SearchConfig
from nas.for_data import zoo_for

__all__ = ["proxy_comparison"]


def proxy_comparison(cfg: SearchConfig, ev: ProxyEvaluator, summary: dict) -> None:
    """The winner against the baselines scaled to its budget, by the same proxy recipe."""
    from nas.compare import compare, entries_for, log_stderr, reporting_evaluator, write_report
    from nas.run_folder import command_line, environment

    base = searchspace.Genotype.from_yaml(Path(summary["best"]["base_genotype"]))
    limits, info = cfg.base_limits, ev.data_info()
    fits = [b for b in cfg.baselines if limits.fits(limits.cost(zoo_for(b, info)))]
    entries = entries_for([("searched base", base)], fits, None, info=info)
    entries += [e for e in entries_for([], [b for b in cfg.baselines if b not in fits], limits,
                                       "base budget", info) if e.name.endswith("@base budget")]
    folder = Path(cfg.out) / "compare"
    log_stderr(f"comparing the winner with {len(entries) - 1} baseline(s) at the base budget "
               f"by {ev.recipe.name}")
    ev = reporting_evaluator(ev.recipe, cfg.data, ev.device)  # images no trial was scored on
    start = time.perf_counter()
    rows = compare(entries, ev, 1, folder, log=log_stderr)
    write_report(rows, ev.recipe, cfg.data, 1, time.perf_counter() - start, folder,
                 environment(), f"(part of {command_line(cfg)})", info=info)
    lines = ["## Against hand-designed networks at the same cost (proxy level)", "",
             f"Each baseline compound-scaled to the base budget (or as is, when it fits), "
             f"trained by `{ev.recipe.name}` like every trial, scored on the "
             f"{len(ev.split.eval_y):,} validation images no trial was scored on; one seed. "
             "Full table: "
             "[compare/report.md](compare/report.md).", "",
             "| network | multiply-adds | parameters | held-out validation acc (%) |",
             "|---|---:|---:|---:|"]
    for r in rows:
        name = f"**{r.name}**" if r.discovered else r.name
        lines.append(f"| {name} | {r.madds / 1e6:.1f}M | {r.params:,} | "
                     f"{100 * r.accuracy:.2f} |")
    lines += ["", "![pareto](compare/pareto.png)", ""]
    report = Path(cfg.out) / "report.md"
    report.write_text(report.read_text() + "\n".join(lines))
