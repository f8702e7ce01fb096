"""A search's configuration: one immutable value, saved as config.json, defaults applied once.

``SearchConfig`` is what a run is (``--resume`` and ``nas worker`` read it back); ``defaults``
returns it with the machine's defaults filled in, by ``dataclasses.replace``; nothing changes
it afterwards.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch

import evaluators
import searchspace
from nas.budget import parse_budget
from nas.errors import UserError
from nas.loop import Stop
from nas.rescore import Rescore
from nas.screen import DEFAULT_BY
from nas.storage import JOURNAL

__all__ = ["SearchConfig", "Traits", "defaults", "parse_duration", "STUDY"]

STUDY = "search"  # the study's name inside its storage


@dataclass(frozen=True)
class SearchConfig:
    """Everything a run needs; saved as config.json so a resumed run is the same run."""

    budget: str | None  # "" or None only with a table evaluator: its cells as they are
    strategy: str = "evolution"
    trials: int | None = None
    time_s: float | None = None  # wall-clock limit of the search phase
    space: str = "cells"
    evaluator: str = "proxy-cpu"  # a name; a Python evaluator's own name (nas.search)
    data: str | None = None
    out: str = ""
    storage: str | None = None  # database URL; default: a journal file in the run folder
    study: str = STUDY
    workers: int = 1
    seed: int = 0
    scale: bool = True  # the winner compound-scaled to the budget (never without a budget)
    base_fraction: float = 0.25  # the base is searched at this fraction of the budget
    reduced_cpu: bool = False  # the CPU defaults were applied
    baselines: list[str] | None = None  # compared with the winner at the proxy level
    screen: int = 1  # proposals per trial, the one trained picked by a zero-cost score
    screen_by: str = DEFAULT_BY  # that score: a proxy, or vote:A+B of several
    rescore: int = 0  # the final choice: this many best networks trained again (nas.rescore)
    rescore_seeds: int = 2  # more trainings of each, counted in --trials
    shape: list[int] | None = None  # [classes, side] of the images searched (set at the start)
    started: float = field(default_factory=time.time)

    def search_space(self) -> searchspace.SearchSpace:
        """The space, its networks built for the images the run searches."""
        space = searchspace.load_space(self.space)
        return space.for_data(*self.shape) if self.shape else space

    def storage_url(self) -> str:
        return self.storage or str(Path(self.out) / JOURNAL)

    @property
    def limits(self) -> searchspace.Limits:
        """The whole budget (the final network's)."""
        return parse_budget(self.budget).limits if self.budget else searchspace.Limits()

    @property
    def base_limits(self) -> searchspace.Limits:
        """The budget the base network is searched under."""
        if not self.budget:  # a table's cells, searched as they are
            return searchspace.Limits()
        return parse_budget(self.budget).limits.scaled(
            self.base_fraction if self.scale else 1.0)

    @property
    def plan(self) -> Rescore:
        """The final choice: how many networks are trained again, how many times."""
        return Rescore(self.rescore, self.rescore_seeds)

    @property
    def stop(self) -> Stop:
        """The search's own stop: --trials less the trainings of the final choice."""
        trials = None if self.trials is None else self.trials - self.plan.trainings
        return Stop(trials, self.started + self.time_s if self.time_s else None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchConfig:
        """From config.json or a study's attribute (fields of other versions ignored)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def save(self) -> None:
        """config.json in the run folder."""
        (Path(self.out) / "config.json").write_text(json.dumps(self.to_dict(), indent=2))


@dataclass(frozen=True)
class Traits:
    """What the defaults need to know of the evaluator."""

    table: bool  # scores only a benchmark's networks (at their own size)
    noisy: bool  # another seed, another score
    proxy: bool  # one of our training profiles (a GPU changes its default)

    @classmethod
    def of(cls, evaluator: str | evaluators.Evaluator) -> Traits:
        if isinstance(evaluator, evaluators.Evaluator):
            return cls(not evaluator.scores_any_genotype, evaluator.noisy,
                       isinstance(evaluator, evaluators.ProxyEvaluator))
        table = evaluators.TABLES.get(str(evaluator))
        return cls(table is not None, table is None or table.noisy, table is None)


def parse_duration(text: str) -> float:
    """'45m', '2h', '90s', '1h30m', '600' (seconds) -> seconds."""
    number = r"(\d+(?:\.\d+)?)"
    m = re.fullmatch(rf"\s*(?:{number}h)?\s*(?:{number}m)?\s*(?:{number}s?)?\s*", text)
    if not m or not any(m.groups()):
        raise UserError(f"cannot read duration {text!r} (e.g. 45m, 2h, 1h30m, 90s)")
    h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    seconds = h * 3600 + mi * 60 + s
    if seconds <= 0:
        raise UserError(f"duration {text!r} must be more than 0 seconds (leave --time out for "
                        "no limit)")
    return seconds


def defaults(cfg: SearchConfig, trials_given: bool, time_given: bool, evaluator_given: bool,
             traits: Traits | None = None) -> SearchConfig:
    """Sensible defaults: a full proxy search on a GPU, a reduced one (<= 20 min) on a CPU;
    a table's benchmark cells are searched as they are, at the full budget; the final
    choice trains the best networks again when the trials allow it; no budget, no scaling."""
    traits = traits or Traits.of(cfg.evaluator)
    if traits.table:
        cfg = _table(cfg, trials_given or time_given)
    elif traits.proxy and torch.cuda.is_available():
        cfg = _gpu(cfg, trials_given or time_given, evaluator_given)
    elif traits.proxy:
        cfg = _cpu(cfg, trials_given or time_given)
    if not cfg.budget:
        cfg = replace(cfg, scale=False)
    if cfg.rescore == -1:  # not given: 10% of a search of 100 trials or more, if it pays
        cfg = replace(cfg, rescore=5 if traits.noisy and (cfg.trials or 0) >= 100 else 0)
    if cfg.baselines is None and not traits.proxy:
        cfg = replace(cfg, baselines=[])
    return cfg


def _table(cfg: SearchConfig, length_given: bool) -> SearchConfig:
    # the table knows the benchmark's networks at their own size
    return replace(cfg, base_fraction=1.0, trials=cfg.trials if length_given else 100,
                   baselines=[] if cfg.baselines is None else cfg.baselines)


def _gpu(cfg: SearchConfig, length_given: bool, evaluator_given: bool) -> SearchConfig:
    from nas.compare import DEFAULT_BASELINES

    return replace(cfg, evaluator=cfg.evaluator if evaluator_given else "proxy-gpu",
                   trials=cfg.trials if length_given else 100,
                   baselines=list(DEFAULT_BASELINES) if cfg.baselines is None
                   else cfg.baselines)


def _cpu(cfg: SearchConfig, length_given: bool) -> SearchConfig:
    trials, time_s = (cfg.trials, cfg.time_s) if length_given else (14, 13 * 60)
    return replace(cfg, reduced_cpu=True, trials=trials, time_s=time_s,
                   # two more proxy runs, about 2 minutes
                   baselines=["resnet20", "mobilenetv2"] if cfg.baselines is None
                   else cfg.baselines,
                   # small bases train in 40-85 s on 2 cores
                   base_fraction=1 / 16 if cfg.scale else cfg.base_fraction)
