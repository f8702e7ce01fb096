"""The pipeline behind `nas search --budget B`: search a base net, scale it to B, export, report.

A run folder holds everything: ``config.json`` (what was asked, so ``--resume`` continues it),
the study storage, ``trials.csv``, ``base.yaml`` (the searched winner), ``best.yaml`` (the final
genotype), ``model.py`` (the standalone export), ``report.md`` with its plots, ``summary.json``.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import re
import secrets
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import TrialState

import evaluators
import searchspace
from nas.budget import parse_budget
from nas.errors import Interrupted, UserError
from nas.rescore import Rescore, rescore
from nas.screen import DEFAULT_BY, parse_by, zero_cost_screen
from nas.strategies import NAMES, NNI_NAMES, require_nni
from nas.study import (
    JOURNAL,
    Stop,
    best_trial,
    check_storage_url,
    counts,
    create_study,
    is_database,
    open_storage,
    requeue_interrupted,
    requeue_orphans,
    requeue_stale,
    run_worker,
    worker_id,
)
from nas.trial import Status, records

__all__ = ["SearchConfig", "defaults", "run_search", "join_search", "parse_duration",
           "max_workers"]

STUDY = "search"
CONFIG = "config"  # the study user attribute holding the run's SearchConfig
WORKER_MEMORY = 2 << 30  # bytes a worker process may hold: torch, CIFAR-10 and a candidate
MAX_RESTARTS = 3  # per worker slot: a worker that keeps dying is not started for ever


@dataclass
class SearchConfig:
    """Everything a run needs; saved as config.json so a resumed run is the same run."""

    budget: str  # "" (or None) only with a table evaluator: its cells as they are
    strategy: str = "evolution"
    trials: int | None = None
    time_s: float | None = None  # wall-clock limit of the search phase
    space: str = "cells"
    evaluator: str = "proxy-cpu"
    data: str | None = None
    out: str = ""
    storage: str | None = None  # database URL; default: a journal file in the run folder
    study: str = STUDY
    workers: int = 1
    seed: int = 0
    scale: bool = True
    base_fraction: float = 0.25  # the base is searched at this fraction of the budget
    reduced_cpu: bool = False  # the CPU defaults were applied
    baselines: list[str] | None = None  # compared with the winner at the proxy level
    screen: int = 1  # proposals per trial, the one trained picked by a zero-cost score
    screen_by: str = DEFAULT_BY  # that score: a proxy, or vote:A+B of several
    rescore: int = 0  # the final choice: this many best networks trained again (nas.rescore)
    rescore_seeds: int = 2  # more trainings of each, counted in --trials
    started: float = field(default_factory=time.time)

    def storage_url(self) -> str:
        return self.storage or str(Path(self.out) / JOURNAL)

    @property
    def base_limits(self) -> searchspace.Limits:
        """The budget the base network is searched under."""
        if not self.budget:  # a table's cells, searched as they are
            return searchspace.Limits()
        return parse_budget(self.budget).limits.scaled(
            self.base_fraction if self.scale else 1.0)


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


def max_workers() -> int:
    """Worker processes this machine can hold: its memory over WORKER_MEMORY each."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not a POSIX system: assume 16 GiB
        memory = 16 << 30
    return max(1, memory // WORKER_MEMORY)


def defaults(cfg: SearchConfig, trials_given: bool, time_given: bool, evaluator_given: bool
             ) -> SearchConfig:
    """Sensible defaults: a full proxy search on a GPU, a reduced one (<= 20 min) on a CPU;
    a table's benchmark cells are searched as they are, at the full budget; the final
    choice trains the best networks again when the trials allow it."""
    cfg = _defaults(cfg, trials_given, time_given, evaluator_given)
    if cfg.rescore == -1:  # not given: 10% of a search of 100 trials or more, if it pays
        table = evaluators.TABLES.get(cfg.evaluator)
        noisy = table is None or table.noisy
        cfg.rescore = 5 if noisy and (cfg.trials or 0) >= 100 else 0
    return cfg


def _defaults(cfg: SearchConfig, trials_given: bool, time_given: bool, evaluator_given: bool
              ) -> SearchConfig:
    if cfg.evaluator in evaluators.TABLES:
        cfg.base_fraction = 1.0  # the table knows the benchmark's networks at their own size
        if not trials_given and not time_given:
            cfg.trials = 100
        if cfg.baselines is None:
            cfg.baselines = []
        return cfg
    if torch.cuda.is_available():
        if not evaluator_given:
            cfg.evaluator = "proxy-gpu"
        if not trials_given and not time_given:
            cfg.trials = 100
        if cfg.baselines is None:
            from nas.compare import DEFAULT_BASELINES

            cfg.baselines = list(DEFAULT_BASELINES)
        return cfg
    cfg.reduced_cpu = True
    if not trials_given and not time_given:
        cfg.trials, cfg.time_s = 14, 13 * 60
    if cfg.baselines is None:
        cfg.baselines = ["resnet20", "mobilenetv2"]  # two more proxy runs, about 2 minutes
    if cfg.scale:
        cfg.base_fraction = 1 / 16  # small bases train in 40-85 s on 2 cores
    return cfg


def _evaluator(cfg: SearchConfig):
    return evaluators.make(cfg.evaluator, data=cfg.data, limits=cfg.base_limits)


def _screen(cfg: SearchConfig, space: searchspace.SearchSpace):
    """The zero-cost screen of the run (None without --screen): its images are the proxy's
    CIFAR-10 source, or $NAS_DATA / the cache when a table scores the search."""
    data = None if cfg.evaluator in evaluators.TABLES else cfg.data
    return zero_cost_screen(space, cfg.screen, cfg.screen_by, data)


def _worker(cfg_dict: dict[str, Any], index: int, parent: int, token: str) -> None:
    """A worker process: its own evaluator and sampler seed, the shared study; its trials
    name it by ``token``, which its parent gave it. It ends with its parent, which owns it;
    a signal is the parent's to handle."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_end_with, args=(parent,), daemon=True).start()
    try:
        _work(SearchConfig(**cfg_dict), index, worker_id(token=token))
    except UserError as exc:  # e.g. the journal's disk is full: one line, not a traceback
        print(f"nas: error: worker {index}: {exc}", file=sys.stderr, flush=True)
        sys.exit(exc.code)
    except Exception as exc:  # noqa: BLE001 - the parent re-queues its trial: one line here
        line = " ".join(str(exc).split())[:300]
        print(f"nas: error: worker {index}: {type(exc).__name__}: {line}", file=sys.stderr,
              flush=True)
        sys.exit(1)


def _end_with(parent: int) -> None:
    """Exit at once when ``parent`` is gone (killed): no worker outlives the search."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def _work(cfg: SearchConfig, index: int, worker: str) -> None:
    ev = _evaluator(cfg)
    gpus = torch.cuda.device_count()
    device = getattr(ev, "device", None)
    if gpus > 1 and device is not None and device.type == "cuda":  # one GPU per worker
        ev.device = torch.device(f"cuda:{index % gpus}")
    if device is None or device.type == "cpu":
        # each worker its share of the cores: N workers of all cores each thrash (10x slower)
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // cfg.workers))
    space = searchspace.load_space(cfg.space)
    stop = _stop(cfg)
    run_worker(open_storage(cfg.storage_url()), cfg.study, space, cfg.strategy,
               cfg.seed * 1000 + index, ev.evaluate, cfg.base_limits, stop,
               screen=_screen(cfg, space), worker=worker)


def check(cfg: SearchConfig):
    """Fail fast, in one line, on anything wrong before any work starts; returns the
    evaluator, its data (or table) loaded."""
    budget = parse_budget(cfg.budget) if cfg.budget or cfg.evaluator not in evaluators.TABLES \
        else None
    if budget is None:
        cfg.scale = False  # no budget to scale to: the table's cells as they are
    if cfg.strategy not in NAMES:
        raise UserError(f"unknown strategy {cfg.strategy!r} (known: {', '.join(NAMES)})")
    space = searchspace.load_space(cfg.space)
    ev = _evaluator(cfg)
    depths = [d for d, choices in space.decisions.items()  # the cells template's depths
              if d.endswith("_depth") and len(choices) > 1]
    if depths and getattr(getattr(ev, "recipe", None), "depth_mult", 1.0) != 1.0:
        print(f"warning: {ev.name} trains every candidate at {ev.recipe.reduction()}, so it "
              f"cannot tell this space's depths apart ({', '.join(depths)})", file=sys.stderr)
    if cfg.trials is not None and cfg.trials < 1:
        raise UserError("--trials must be at least 1")
    if cfg.rescore < 0 or cfg.rescore == 1 or cfg.rescore_seeds < 1:
        raise UserError("--rescore K trains the K best networks again: K is 0 (off) or at "
                        "least 2")
    if cfg.trials is not None and cfg.trials - _plan(cfg).trainings < cfg.rescore:
        raise UserError(f"--rescore {cfg.rescore} takes {_plan(cfg).trainings} of the "
                        f"{cfg.trials} trials, leaving too few to search: give more --trials "
                        "or a smaller --rescore")
    if cfg.workers < 1:
        raise UserError("--workers must be at least 1")
    if cfg.workers > max_workers():
        raise UserError(f"--workers {cfg.workers} is more than this machine can hold: at most "
                        f"{max_workers()} ({WORKER_MEMORY >> 30} GiB of memory each)")
    if cfg.strategy in NNI_NAMES:
        if cfg.workers > 1:
            raise UserError(f"{cfg.strategy}: NNI's strategies propose from one process; "
                            "use --workers 1")
        if cfg.screen > 1:
            raise UserError("--screen works with this project's strategies, not NNI's")
        require_nni()  # not installed: one line that says how
    screen = _screen(cfg, space)  # a bad --screen or --screen-by fails here, in one line
    if screen is not None and set(parse_by(cfg.screen_by)) - {"madds", "params"}:
        screen.pick.zc.load()  # its images, with a clear error if they are missing
    if cfg.storage:
        check_storage_url(cfg.storage)
    if cfg.evaluator in evaluators.TABLES and (space.template != ev.template or (
            space.resolution, space.num_classes) != (32, 10)):
        raise UserError(f"{ev.name} scores only the networks of its benchmark (32x32, 10 "
                        f"classes): use --space {ev.template}")
    limits = cfg.base_limits
    if not limits:
        ev.load()
        return ev
    cheapest = searchspace.cost(space.cheapest(lambda g: limits.use(searchspace.cost(g))))
    over = [(k, getattr(cheapest, k), v) for k, v in limits.items() if getattr(cheapest, k) > v]
    if over:
        k, value, limit = over[0]
        part = ("" if cfg.base_fraction == 1.0 or not cfg.scale else
                f" (the base is searched at 1/{round(1 / cfg.base_fraction)} of {budget}; "
                "--no-scale searches at the full budget)")
        raise UserError(f"no network of the {space.name} space fits: its cheapest has "
                        f"{value / 1e6:.2f}M {k}, over the budget of "
                        f"{limit / 1e6:.2f}M{part}")
    ev.load()  # the data or table, here, with a clear error if it is missing
    return ev


def run_search(cfg: SearchConfig, resume: bool = False, progress: bool = True) -> dict:
    """Search, scale, export and report; returns the summary (also in summary.json)."""
    from nas.run_folder import write_outputs

    if resume and cfg.strategy in NNI_NAMES:
        raise UserError(f"{cfg.strategy}: NNI's strategies keep their state in memory and "
                        "cannot continue a run; start a new one")
    ev = check(cfg)
    out = Path(cfg.out)
    if cfg.workers == 1 and isinstance(ev, evaluators.ProxyEvaluator):
        ev.states = out / "states"  # a trial stopped by a signal resumes its training
    try:  # only a start that passed its checks makes the folder
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    except OSError as exc:
        raise UserError(f"cannot write the run folder {out}: {exc.strerror or exc}") from None
    storage = open_storage(cfg.storage_url(), on_repair=_log)
    study = create_study(storage, cfg.study, cfg.strategy)
    study.set_user_attr(CONFIG, asdict(cfg))  # what `nas worker` on another machine runs
    if resume:
        # a shared database: only trials whose heartbeats stopped, never another machine's
        # live ones; a journal belongs to this machine, so what is RUNNING there is dead
        n = requeue_stale(study) if is_database(cfg.storage_url()) else requeue_orphans(
            study, reason="worker died: the run stopped before the trial finished (found by "
                          "--resume)")
        if n:
            _log(f"resume: {n} unfinished trial(s) queued again")
    if cfg.baselines and not ev.scores_any_genotype:
        print(f"note: {ev.name} has no entry for zoo networks: --baselines are not compared",
              file=sys.stderr)
    if cfg.reduced_cpu:
        limit = f" or {cfg.time_s / 60:.0f} minutes" if cfg.time_s else ""
        base = f"base networks at 1/{round(1 / cfg.base_fraction)} of the budget, " \
            if cfg.scale else ""
        print(f"no GPU: running a reduced CPU search ({cfg.evaluator}, {base}"
              f"{cfg.trials or 'unlimited'} trials{limit})", file=sys.stderr)
    monitor = _Monitor(study, cfg, progress)
    monitor.start()
    stopped: Interrupted | None = None
    try:
        _search(cfg, ev, storage)
        if is_database(cfg.storage_url()):
            _finish_shared(cfg, ev, storage, study)
        rescore(study, searchspace.load_space(cfg.space), ev.evaluate, _plan(cfg),
                cfg.strategy, _log, _stop(cfg).deadline)
    except KeyboardInterrupt as exc:
        _ignore_signals()  # the clean stop below must not be cut short by a second one
        # Interrupted, or a candidate's training Paused after saving its state
        stopped = exc if isinstance(exc, Interrupted) else Interrupted(
            getattr(exc, "signum", signal.SIGINT))
    finally:
        monitor.stop()
    study = create_study(open_storage(cfg.storage_url()), cfg.study, cfg.strategy)
    if stopped is not None:
        _stop_cleanly(cfg, study, stopped, ev)
    if best_trial(study) is None:
        c = counts(study)
        write_outputs(cfg, study, None, None)
        raise UserError(f"no candidate was scored ({c['rejected']} rejected, {c['failed']} "
                        f"failed); see {out / 'trials.csv'}", code=1)
    summary = write_outputs(cfg, study, best_trial(study), _scaled(cfg, study), ev)
    if cfg.baselines and ev.scores_any_genotype:
        _proxy_comparison(cfg, ev, summary)
    return summary


def _finish_shared(cfg: SearchConfig, ev, storage, study) -> None:
    """After this machine's workers stop on a shared database: wait for the trials other
    machines are training, and train here those queued again because their machine died."""
    while _await_others(study, _stop(cfg)):
        queued = _waiting(study)
        _search(cfg, ev, storage)
        if queued and queued <= _waiting(study):  # none taken: a crash loop ends here
            _log(f"{len(queued)} queued trial(s) were not taken: the workers here stopped "
                 "without training them; writing the run folder")
            return


def _waiting(study) -> set[int]:
    return {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,))}


def _await_others(study, stop: Stop, poll: float = 2.0, every: float = 300.0) -> bool:
    """Wait while other machines train trials of this shared study, so the run folder is
    written from the finished search (trials in flight finish, past --time too, as local
    ones do). True when one of them was queued again (its machine died) and the search has
    room for it: the caller trains it."""
    said: tuple[int, ...] = ()
    last = 0.0
    while True:
        requeue_stale(study, _log)
        if _waiting(study) and not stop.reached(study):
            return True
        running = records(study, (TrialState.RUNNING,))
        if not running:
            return False
        numbers = tuple(t.number for t in running)
        if numbers != said or time.monotonic() - last > every:
            where = ", ".join(f"{t.number} ({t.worker or 'starting'})" for t in running)
            _log(f"waiting for {len(running)} trial(s) running on other machines before "
                 f"writing the run folder: {where}; Ctrl-C writes it from what has finished")
            said, last = numbers, time.monotonic()
        time.sleep(poll)


def _plan(cfg: SearchConfig) -> Rescore:
    return Rescore(cfg.rescore, cfg.rescore_seeds)


def _stop(cfg: SearchConfig) -> Stop:
    """The search's own stop: --trials less the trainings of the final choice."""
    trials = None if cfg.trials is None else cfg.trials - _plan(cfg).trainings
    return Stop(trials, cfg.started + cfg.time_s if cfg.time_s else None)


def _ignore_signals() -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _stop_cleanly(cfg: SearchConfig, study, stopped: Interrupted, ev) -> None:
    """After SIGINT or SIGTERM: the trials in flight queued again, the run folder written from
    what finished, one line on how to go on; then the signal goes on to the CLI (its exit
    code). Signals are ignored meanwhile (SIGKILL still ends it)."""
    from nas.run_folder import write_outputs

    requeue_interrupted(study, worker_id(), stopped.name)
    best = best_trial(study)
    write_outputs(cfg, study, best, _scaled(cfg, study) if best is not None else None, ev)
    c = counts(study)
    n = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
    wrote = "trials.csv, summary.json" + (", report.md, best.yaml, model.py" if best else "")
    _log(f"stopped by {stopped.name}: {c['complete']} scored trial(s) kept, {n} queued for "
         f"the resume; wrote {wrote} in {cfg.out}; continue with: nas search --resume "
         f"{cfg.out}")
    raise stopped


def join_search(storage_url: str, study_name: str, data: str | None, workers: int) -> dict:
    """`nas worker`: more workers, on this machine, for a search whose study lives in a shared
    database; the run's settings come from the study. Returns the study's counts at the end
    (the machine that started the search writes the run folder)."""
    check_storage_url(storage_url)
    if not is_database(storage_url):
        raise UserError("nas worker joins a search in a database (postgresql://, mysql://, "
                        "sqlite:///file.db); on one machine, use nas search --workers N")
    storage = open_storage(storage_url)
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        raise UserError(f"no study {study_name!r} in {storage_url}; start the search with "
                        f"nas search --storage URL --study {study_name}") from None
    known = {f.name for f in fields(SearchConfig)}
    saved = study.user_attrs.get(CONFIG)
    if not isinstance(saved, dict):
        raise UserError(f"study {study_name!r} was not started by nas search (no settings)")
    cfg = SearchConfig(**{k: v for k, v in saved.items() if k in known})
    cfg.storage, cfg.workers = storage_url, workers
    if data:
        cfg.data = data
    if cfg.strategy in NNI_NAMES:
        raise UserError(f"{cfg.strategy}: NNI's strategies propose from one process; their "
                        "search cannot be joined")
    ev = check(cfg)
    _log(f"joining {cfg.strategy} search {study_name!r} ({cfg.evaluator}, "
         f"{cfg.trials or 'unlimited'} trials) with {workers} worker(s)")
    try:
        _search(cfg, ev, storage)
    except KeyboardInterrupt as exc:
        _ignore_signals()
        name = exc.name if isinstance(exc, Interrupted) else "SIGINT"
        requeue_interrupted(study, worker_id(), name)
        raise
    return counts(study)


def _proxy_comparison(cfg: SearchConfig, ev, summary: dict) -> None:
    """The winner against the baselines scaled to its budget, by the same proxy recipe."""
    from nas.compare import compare, entries_for, log_stderr, reporting_evaluator, write_report
    from nas.run_folder import command_line, environment

    base = searchspace.Genotype.from_yaml(Path(summary["best"]["base_genotype"]))
    limits = cfg.base_limits
    fits = [b for b in cfg.baselines if limits.fits(searchspace.cost(searchspace.zoo.get(b)))]
    entries = entries_for([("searched base", base)], fits, None)
    entries += [e for e in entries_for([], [b for b in cfg.baselines if b not in fits], limits,
                                       "base budget") if e.name.endswith("@base budget")]
    folder = Path(cfg.out) / "compare"
    log_stderr(f"comparing the winner with {len(entries) - 1} baseline(s) at the base budget "
               f"by {ev.recipe.name}")
    ev = reporting_evaluator(ev.recipe, cfg.data, ev.device)  # images no trial was scored on
    start = time.perf_counter()
    rows = compare(entries, ev, 1, folder, log=log_stderr)
    write_report(rows, ev.recipe, cfg.data, 1, time.perf_counter() - start, folder,
                 environment(), f"(part of {command_line(cfg)})")
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


def _search(cfg: SearchConfig, ev, storage) -> None:
    space = searchspace.load_space(cfg.space)
    stop = _stop(cfg)
    if cfg.workers == 1:
        run_worker(storage, cfg.study, space, cfg.strategy, cfg.seed * 1000, ev.evaluate,
                   cfg.base_limits, stop, screen=_screen(cfg, space))
        return
    _Supervisor(cfg, create_study(storage, cfg.study, cfg.strategy), stop).run()


class _Supervisor:
    """Owns the worker processes of ``--workers N``: a worker that dies has its trial failed
    with the reason and queued again once (same decisions, same seed), and is replaced while
    the search has trials left; on a signal, every worker is stopped and its trial queued."""

    def __init__(self, cfg: SearchConfig, study, stop: Stop) -> None:
        self.cfg, self.study, self.stop = cfg, study, stop
        self.ctx = mp.get_context("spawn")
        self.procs: dict[int, tuple[mp.process.BaseProcess, str]] = {}  # slot: process, id
        self.ids: set[str] = set()  # every worker this run started, as trials name them
        self.restarts = MAX_RESTARTS * cfg.workers  # for all slots: a crash loop ends

    def run(self) -> None:
        try:
            for slot in range(self.cfg.workers):
                self._start(slot)
            while self.procs:
                wait([p.sentinel for p, _ in self.procs.values()], timeout=1.0)
                for slot, (p, name) in list(self.procs.items()):
                    if p.exitcode is not None:
                        del self.procs[slot]
                        self._ended(slot, p, name)
        except BaseException:  # a signal, or the storage failing: no worker is left behind
            _ignore_signals()
            self._stop_all()
            raise

    def _start(self, slot: int) -> None:
        token = secrets.token_hex(4)
        p = self.ctx.Process(target=_worker, args=(asdict(self.cfg), slot, os.getpid(), token),
                             daemon=True)
        # the child inherits SIG_IGN until its own code runs (a Ctrl-C is the parent's)
        before = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            p.start()
        finally:
            signal.signal(signal.SIGINT, before)
        name = worker_id(p.pid, token)
        self.procs[slot] = (p, name)
        self.ids.add(name)

    def _ended(self, slot: int, p, name: str) -> None:
        """A worker ended: a dead one's trial is queued again, and a worker is started in its
        place, as it is for a queued trial that no running worker would take."""
        n = 0
        if p.exitcode != 0:
            why = _exit_reason(p.exitcode)
            n = requeue_orphans(self.study, worker=name,
                                reason=f"worker died: {why}")
            _log(f"worker {slot} (pid {p.pid}) died: {why}; {n} trial(s) queued again")
        waiting = self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        if (p.exitcode != 0 or (waiting and not self.procs)) and self.restarts > 0 \
                and not self.stop.reached(self.study):
            self.restarts -= 1
            _log(f"starting worker {slot} again")
            self._start(slot)

    def _stop_all(self) -> None:
        for p, _ in self.procs.values():
            p.terminate()
        for p, _ in self.procs.values():
            p.join(10)
            if p.exitcode is None:
                p.kill()
                p.join()
        for name in self.ids:  # the parent queues their trials: see _stop_cleanly
            requeue_interrupted(self.study, name, "the search stopped")


def _exit_reason(code: int) -> str:
    """A process's exit code in words: 'killed by SIGKILL', 'exit code 1'."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _scaled(cfg: SearchConfig, study) -> tuple[searchspace.Genotype, searchspace.Genotype,
                                               float | None]:
    """(base winner, final genotype, fill ratio)."""
    from nas.scaling import scale_to_budget

    base = searchspace.Genotype.from_yaml(best_trial(study).genotype)
    label = base.name  # a space may name its networks (nb201: the benchmark's string)
    base = base.replace(name=label or "searched-base")
    if not cfg.scale:
        return base, base.replace(name=label or "searched"), None
    r = scale_to_budget(base, parse_budget(cfg.budget).limits)
    return base, r.genotype.replace(name=f"{label} scaled" if label else "searched-scaled"), \
        r.ratio


class _Monitor:
    """A live line: trials done, best accuracy and its cost, current candidate, counts."""

    def __init__(self, study, cfg: SearchConfig, enabled: bool) -> None:
        self.study, self.cfg, self.enabled = study, cfg, enabled
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._bar = None
        self._tty = sys.stderr.isatty()
        self._last = ""

    def start(self) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        total = self.cfg.trials
        if self._tty:
            self._bar = tqdm(total=total, desc=f"{self.cfg.strategy} search", unit="trial",
                             file=sys.stderr, dynamic_ncols=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(2.0):
            self._update()

    def _update(self) -> None:
        try:
            trials = records(self.study)
        except Exception:  # the storage is being written by a worker; try next tick
            return
        c = counts(self.study)
        best = best_trial(self.study)
        running = [t for t in trials if t.status == Status.TRAINING and t.madds is not None]
        post = {"best": "-" if best is None else
                f"{100 * best.values[0]:.1f}% @ {best.madds / 1e6:.0f}M",
                "now": f"{running[-1].madds / 1e6:.0f}M" if running else "-",
                "rejected": c["rejected"], "failed": c["failed"]}
        if self.cfg.time_s:
            left = max(0, self.cfg.started + self.cfg.time_s - time.time())
            post["left"] = f"{left / 60:.0f}m"
        done = c["complete"] + c["failed"] + c["rescored"]
        if self._bar is None:  # not a terminal: one plain line whenever something changes
            line = (f"trial {done}/{self.cfg.trials or '-'}  " +
                    "  ".join(f"{k} {v}" for k, v in post.items() if k not in ("now", "left")))
            if line != self._last:
                print(line, file=sys.stderr, flush=True)
                self._last = line
            return
        self._bar.n = done
        self._bar.set_postfix(post, refresh=False)
        self._bar.refresh()

    def stop(self) -> None:
        if not self.enabled:
            return
        self._stop.set()
        self._thread.join(timeout=5)
        self._update()
        if self._bar is not None:
            self._bar.close()
