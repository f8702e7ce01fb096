"""What `strategies.py --space nbmacro --out DIR` writes: strategies.md, strategies.json and
regret.png (the mean regret of the named network against networks scored, one panel a
budget, the final choice with rescoring as a marker at the end)."""

from __future__ import annotations

import json
import platform
import statistics
import sys
import time
from pathlib import Path

import optuna
import torch


def _environment() -> str:
    return (f"CPU ({platform.machine()}, {torch.get_num_threads()} threads); torch "
            f"{torch.__version__}, optuna {optuna.__version__}, Python "
            f"{platform.python_version()}")


def write(out: Path, got: dict, args) -> None:
    out.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/" + " ".join(Path(sys.argv[0]).name.split() + sys.argv[1:])
    per_seed = {b: {v: [{"final": r["finals"], "at_100": r["curve"][-1],
                         "oracle": r["oracle"]} for r in runs] for v, runs in by_v.items()}
                for b, by_v in got["results"].items()}
    (out / "strategies.json").write_text(_json(
        {"command": command, "environment": _environment(), "date": time.strftime("%Y-%m-%d"),
         "minutes": round(got["minutes"], 1), "tables": got["tables"], "per_seed": per_seed}))
    seeds = f"seeds {args.first_seed}-{args.first_seed + args.seeds - 1}"
    md = ["# Strategies on NAS-Bench-Macro under multiply-add budgets", "", f"`{command}`", "",
          f"- {_environment()}; {got['minutes']:.1f} min", f"- date: {time.strftime('%Y-%m-%d')}",
          f"- {args.seeds} searches a row ({seeds}), {args.trials} networks scored a search; "
          "reward: one of the benchmark's three trainings, picked by the trial's seed; "
          "regret: mean accuracy (points) of the best network inside the budget minus the "
          "named network's (mean +- sd over searches); 'final' is `nas search`'s own "
          "choice (the best few trained again, named by their mean), 'oracle' the best "
          "network among those scored (what a noise-free choice would name).", "",
          got["text"], "", "![regret](regret.png)", ""]
    (out / "strategies.md").write_text("\n".join(md))
    _plot(out / "regret.png", got, args)
    print(f"wrote {out / 'strategies.md'}, {out / 'strategies.json'}, {out / 'regret.png'}")


def _json(data: dict) -> str:
    """Two levels indented, then one line each (a budget's variant: its table row, its seeds),
    so the file reads and diffs by row."""
    def block(d: dict) -> str:
        return "{\n" + ",\n".join(f"   {json.dumps(k)}: {json.dumps(v)}" for k, v in d.items()) \
            + "\n  }"
    parts = []
    for k, v in data.items():
        if k in ("tables", "per_seed"):
            inner = ",\n".join(f"  {json.dumps(b)}: {block(rows)}" for b, rows in v.items())
            parts.append(f" {json.dumps(k)}: {{\n{inner}\n }}")
        else:
            parts.append(f" {json.dumps(k)}: {json.dumps(v)}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def _plot(path: Path, got: dict, args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets = list(got["results"])
    fig, axes = plt.subplots(1, len(budgets), figsize=(4.2 * len(budgets), 3.8), sharey=True,
                             squeeze=False)
    for ax, budget in zip(axes[0], budgets):
        for i, (name, runs) in enumerate(got["results"][budget].items()):
            n = min(len(r["curve"]) for r in runs)
            mean = [statistics.fmean(r["curve"][j] for r in runs) for j in range(n)]
            style = "-" if "screen" not in name else "--"
            ax.plot(range(1, n + 1), mean, style, color=f"C{i % 4}", lw=1.6, label=name)
            final = statistics.fmean(r["final"] for r in runs)
            ax.plot([n + 4], [final], "D" if "screen" not in name else "s", color=f"C{i % 4}",
                    ms=6)
        ax.axhline(0.1, color="0.4", ls=":", lw=1)
        ax.set_title(f"budget {budget}")
        ax.set_xlabel("networks scored (final choice at the right)")
        ax.set_yscale("symlog", linthresh=0.1)
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("regret of the named network (points)")
    axes[0][-1].legend(fontsize=7, loc="upper right")
    fig.suptitle(f"NAS-Bench-Macro, one-training reward, mean over {args.seeds} searches",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
