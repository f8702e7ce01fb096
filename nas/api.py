"""The Python API: ``nas.search``, ``nas.scale``, ``nas.export``, over the CLI's own parts.

    import nas, searchspace

    def score(genotype):                      # or score(genotype, seed)
        return my_accuracy(genotype)          # a float to maximise

    result = nas.search("cells", score, budget="50M-madds", trials=30, seed=0)
    result.best, result.score                 # the winner (a Genotype) and its score
    nas.export(result.best, "model.py")       # a standalone PyTorch file

A function is wrapped (``evaluators.FunctionEvaluator``) so that the budget, failures (an
exception fails that trial with its message), deduplication, reuse, storage, workers and
resume behave as they do for our evaluators. With ``out`` the search runs the pipeline of
`nas search` (``nas.pipeline.run_search``); without, the same loop (``nas.supervisor``) over
a study in memory or in ``storage``.
"""

from __future__ import annotations

import contextlib
import json
import pickle
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from time import time as time_now

import optuna

import evaluators
import searchspace
from nas.budget import parse_budget
from nas.checks import check
from nas.config import STUDY, SearchConfig, Traits, defaults, parse_duration
from nas.errors import UserError, known_errors, raise_on_signals
from nas.rescore import choose, rescore
from nas.screen import DEFAULT_BY
from nas.storage import create_study, open_storage
from nas.supervisor import log, search_here
from nas.trial import Record, records

__all__ = ["search", "SearchResult", "scale", "export"]

Scorer = str | Path | evaluators.Evaluator | Callable[..., float]


@dataclass(frozen=True)
class SearchResult:
    """What a search found. ``best`` is the network that was scored; ``final`` is it
    compound-scaled to the budget (``scale=True``), else ``best`` again."""

    best: searchspace.Genotype | None  # None when no candidate was scored (without out)
    score: float | None  # its score (the mean of its trainings when rescored)
    final: searchspace.Genotype | None
    records: list[Record]  # every trial, by number
    study: optuna.Study
    folder: Path | None = None  # the run folder, with ``out``
    summary: dict | None = None  # summary.json's content, with ``out``


def search(space: str | Path | searchspace.SearchSpace = "cells", evaluator: Scorer = "proxy-cpu",
           budget: str | None = None, *, strategy: str = "evolution", trials: int | None = 100,
           time: str | float | None = None, seed: int = 0, storage: str | None = None,
           study: str = STUDY, workers: int = 1, out: str | Path | None = None,
           resume: bool = False, data: str | Path | None = None, scale: bool = False,
           base_fraction: float = 0.25, rescore_best: int | None = None, screen: int = 1,
           screen_by: str = DEFAULT_BY, baselines: list[str] | None = None,
           progress: bool = False) -> SearchResult:
    """Search ``space`` for the network ``evaluator`` scores best within ``budget``.

    Args:
        space: a ``SearchSpace``, or a shipped space's name or a space YAML path.
        evaluator: an evaluator's name (``proxy-cpu``, ``nb201-table``, ...), an
            ``evaluators.Evaluator``, or a function ``f(genotype) -> float`` or
            ``f(genotype, seed) -> float`` returning the score to maximise.
        budget: e.g. ``"50M-madds"``, ``"3M-params"``; None searches without one.
        strategy: ``rl``, ``evolution``, ``tpe``, ``nsga2``, ``random`` (or ``nni:...``).
        trials: networks scored; ``time``: a wall-clock limit ("45m", or seconds).
        storage: a journal path or database URL that keeps the study (default: the run
            folder's journal with ``out``, else memory); ``resume=True`` continues it.
        workers: processes on this machine (a Python evaluator must then pickle: a
            module-level function, the script's search under ``if __name__ == "__main__":``).
        out: a run folder, written as `nas search` writes it (report, plots, ``best.yaml``,
            ``model.py``); ``resume=True`` continues the run in it, with its own settings.
        scale: search at ``base_fraction`` of the budget and compound-scale the winner to
            it, as `nas search` does; by default the search is at the budget itself.
        rescore_best: the final choice trains this many best networks again with other
            seeds (default: 5 for a noisy evaluator and 100 trials or more, else 0).
        baselines: zoo networks compared with the winner in the run folder's report (a
            training profile's evaluator only, as `nas search --baselines`).

    Returns:
        A ``SearchResult``. Bad input raises ``nas.UserError`` (one line) before any work;
        Ctrl-C stops the search cleanly and raises KeyboardInterrupt.
    """
    with _guarded():
        space_obj, space_name = _space(space, workers, resume)
        cfg = SearchConfig(budget=budget, strategy=strategy, trials=trials,
                           time_s=_seconds(time), space=space_name, evaluator="",
                           data=_str(data), out=_str(out) or "", storage=storage, study=study,
                           workers=workers, seed=seed, scale=scale and bool(budget),
                           base_fraction=base_fraction, screen=screen,
                           baselines=list(baselines or []),
                           screen_by=screen_by,
                           rescore=-1 if rescore_best is None else rescore_best)
        cfg, ev = _evaluator(evaluator, cfg, trials is not None, time is not None)
        if out is not None:
            return _run_folder(cfg, ev, space_obj, resume, progress)
        return _in_storage(cfg, ev, space_obj, resume, progress)


@contextlib.contextmanager
def _guarded() -> Iterator[None]:
    """As the CLI runs a command: a signal stops the search cleanly (the handlers of the
    caller come back after), and errors that are already one line become UserError."""
    try:
        with raise_on_signals():
            yield
    except known_errors() as exc:
        raise UserError(str(exc)) from None


def _str(value: str | Path | None) -> str | None:
    return None if value is None else str(value)


def _seconds(time: str | float | None) -> float | None:
    if isinstance(time, str):
        return parse_duration(time)
    if time is not None and not time > 0:
        raise UserError(f"time={time!r}: give more than 0 seconds, or None for no limit")
    return time


def _space(space: str | Path | searchspace.SearchSpace, workers: int, resume: bool
           ) -> tuple[searchspace.SearchSpace, str]:
    """The space, and the name worker processes and resumed runs load it by."""
    if not isinstance(space, searchspace.SearchSpace):
        return searchspace.load_space(space), str(space)
    try:
        shipped = searchspace.load_space(space.name) == space
    except searchspace.SpaceError:
        shipped = False
    if not shipped and (workers > 1 or resume):
        raise UserError(f"space {space.name!r} is not a shipped one: give its YAML path so "
                        "that worker processes and a resumed run can load it")
    return space, space.name


def _evaluator(evaluator: Scorer, cfg: SearchConfig, trials_given: bool, time_given: bool
               ) -> tuple[SearchConfig, evaluators.Evaluator | None]:
    """The configuration with its defaults, and the Python evaluator (None for a name: the
    search makes it, and each worker process its own)."""
    if isinstance(evaluator, str | Path):
        cfg = replace(cfg, evaluator=str(evaluator))
        return defaults(cfg, trials_given, time_given, True), None
    ev = evaluators.as_evaluator(evaluator)
    cfg = defaults(replace(cfg, evaluator=ev.name), trials_given, time_given, True,
                   Traits.of(ev))
    if not isinstance(evaluator, evaluators.Evaluator):  # ours: at the budget searched
        ev = evaluators.FunctionEvaluator(evaluator, ev.name, cfg.base_limits)
    if cfg.workers > 1:
        _check_picklable(evaluator)
    return cfg, ev


def _check_picklable(evaluator: object) -> None:
    """Worker processes get the evaluator pickled, and import what it names."""
    where = getattr(evaluator, "__module__", None)
    interactive = where == "__main__" and not hasattr(sys.modules["__main__"], "__file__")
    try:
        pickle.dumps(evaluator)
    except Exception as exc:  # noqa: BLE001 - pickle raises several kinds
        interactive, why = True, f" ({type(exc).__name__}: {exc})"
    else:
        why = " (defined in an interactive session)"
    if interactive:
        raise UserError(f"workers > 1 hand the evaluator to other processes, which cannot "
                        f"take this one{why}: define it at module level in a file, or use "
                        "workers=1")


def _run_folder(cfg: SearchConfig, ev: evaluators.Evaluator | None,
                space: searchspace.SearchSpace, resume: bool, progress: bool) -> SearchResult:
    """The whole pipeline, as `nas search` runs it, into the run folder."""
    from nas.pipeline import run_search

    if resume:
        cfg = _resumed(cfg)
    elif (Path(cfg.out) / "config.json").exists():
        raise UserError(f"{cfg.out} already holds a run; pass resume=True or another out")
    summary = run_search(cfg, resume=resume, progress=progress, evaluator=ev, space=space)
    study = create_study(open_storage(cfg.storage_url()), cfg.study, cfg.strategy)
    final = searchspace.Genotype.from_yaml(Path(summary["best"]["genotype"]))
    return _result(study, cfg, final, Path(cfg.out), summary)


# what a resumed run may not change: they define it (as `nas search --resume` keeps them)
_DEFINING = ("budget", "strategy", "space", "evaluator", "seed", "scale", "base_fraction",
             "screen", "screen_by", "rescore", "rescore_seeds", "study", "storage")


def _resumed(cfg: SearchConfig) -> SearchConfig:
    """The run in ``cfg.out`` as it was saved, with this call's length, data and workers."""
    path = Path(cfg.out) / "config.json"
    if not path.is_file():
        raise UserError(f"{cfg.out}: not a run folder (no config.json) to resume")
    saved = SearchConfig.from_dict(json.loads(path.read_text()))
    for name in _DEFINING:
        if getattr(saved, name) != getattr(cfg, name):
            raise UserError(f"{cfg.out} holds a run with {name}={getattr(saved, name)!r}, not "
                            f"{getattr(cfg, name)!r}: resume it with its own settings")
    return replace(saved, trials=cfg.trials, time_s=cfg.time_s, data=cfg.data,
                   workers=cfg.workers, started=time_now(), out=cfg.out)


def _in_storage(cfg: SearchConfig, ev: evaluators.Evaluator | None,
                space: searchspace.SearchSpace, resume: bool, progress: bool) -> SearchResult:
    """The search and the final choice, with no run folder."""
    from nas.pipeline import requeue_unfinished
    from nas.progress import Monitor

    if cfg.workers > 1 and not cfg.storage:
        raise UserError("workers > 1 share their study through a file: give out= (a run "
                        "folder) or storage= (a journal path or database URL)")
    found = check(cfg, ev, space)
    cfg = replace(cfg, shape=found.shape or cfg.shape)
    storage = found.storage or (open_storage(cfg.storage, on_repair=log) if cfg.storage
                                else optuna.storages.InMemoryStorage())
    study = create_study(storage, cfg.study, cfg.strategy)
    if study.get_trials(deepcopy=False) and not resume:
        raise UserError(f"{cfg.storage} already holds study {cfg.study!r}: pass resume=True "
                        "to continue it, or another study=")
    if resume:
        requeue_unfinished(study, cfg)
    monitor = Monitor(study, cfg, progress)
    monitor.start()
    try:
        search_here(cfg, found, storage, custom=ev is not None)
        rescore(study, found.space, found.evaluator.evaluate, cfg.plan, cfg.strategy, log,
                cfg.stop.deadline)
    finally:
        monitor.stop()
    return _result(study, cfg, None)


def _result(study: optuna.Study, cfg: SearchConfig, final: searchspace.Genotype | None,
            folder: Path | None = None, summary: dict | None = None) -> SearchResult:
    trials = records(study)
    choice = choose([t for t in trials if t.state == optuna.trial.TrialState.COMPLETE])
    if choice is None:
        return SearchResult(None, None, None, trials, study, folder, summary)
    best = searchspace.Genotype.from_yaml(choice.record.genotype)
    if not cfg.scale:
        final = best
    elif final is None:
        final = scale(best, cfg.budget)
    return SearchResult(best, choice.mean, final, trials, study, folder, summary)


def scale(genotype: searchspace.Genotype, budget: str, alpha: float | None = None,
          beta: float | None = None, gamma: float | None = None) -> searchspace.Genotype:
    """``genotype`` compound-scaled (EfficientNet's depth, width and resolution rule) to fill
    ``budget`` without passing it; ``alpha``, ``beta``, ``gamma`` default to EfficientNet's.

    Example:
        >>> g = scale(searchspace.zoo.get("resnet20"), "300M-madds")
        >>> 270e6 < searchspace.cost(g).madds <= 300e6
        True
    """
    from nas.latency_cmd import prepare
    from nas.scaling import EFFICIENTNET, scale_to_budget

    a, b, c = (x if x is not None else d for x, d in zip((alpha, beta, gamma), EFFICIENTNET))
    limits = parse_budget(budget).limits
    with _guarded():
        if limits.latency_ms is not None:
            prepare(limits.latency_on)  # this machine's table measured first when new
        return scale_to_budget(genotype, limits, a, b, c).genotype


def export(genotype: searchspace.Genotype, path: str | Path, weights: str | Path | None = None,
           format: str = "py", data: str | Path | None = None) -> list[Path]:
    """Write ``genotype`` as a standalone PyTorch file (``format="py"``), or as ``pt2`` or
    ``onnx``, with ``weights`` (a checkpoint of `nas train`) when given; returns the files
    written. ``data``: the images it is for (the .py file names their classes and uses their
    channel statistics)."""
    from evaluators.data import data_info
    from nas.standalone import write_export

    with _guarded():
        info = data_info(data) if data is not None else None
    return write_export(genotype, path, format, weights, info=info)
