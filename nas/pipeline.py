"""The pipeline behind `nas search --budget B`: search a base net, scale it to B, export, report.

A run folder holds everything: ``config.json`` (what was asked, so ``--resume`` continues it),
the study storage, ``trials.csv``, ``base.yaml`` (the searched winner), ``best.yaml`` (the final
genotype), ``model.py`` (the standalone export), ``report.md`` with its plots, ``summary.json``.
"""

from __future__ import annotations

import signal
from dataclasses import replace
from pathlib import Path

import optuna
from optuna.trial import TrialState

import evaluators
import searchspace
from nas.budget import parse_budget
from nas.checks import Checked, check
from nas.config import SearchConfig
from nas.errors import Interrupted, UserError
from nas.progress import Monitor
from nas.recovery import requeue_interrupted, requeue_orphans, requeue_stale, worker_id
from nas.rescore import rescore
from nas.shared import CONFIG, finish_shared
from nas.storage import create_study, is_database, open_storage
from nas.strategies import NNI_NAMES
from nas.supervisor import ignore_signals, log, search_here
from nas.tally import best_trial, counts

__all__ = ["run_search", "scaled_winner", "requeue_unfinished"]


def run_search(cfg: SearchConfig, resume: bool = False, progress: bool = True,
               evaluator: evaluators.Evaluator | None = None,
               space: searchspace.SearchSpace | None = None) -> dict:
    """Search, scale, export and report; returns the summary (also in summary.json).
    ``evaluator``, ``space``: Python objects, when ``cfg`` names them but cannot rebuild
    them (``nas.search``)."""
    if resume and cfg.strategy in NNI_NAMES:
        raise UserError(f"{cfg.strategy}: NNI's strategies keep their state in memory and "
                        "cannot continue a run; start a new one")
    found = check(cfg, evaluator, space)
    cfg = replace(cfg, shape=found.shape or cfg.shape)  # saved: workers and resumes build alike
    study, storage = _start(cfg, found, resume)
    _announce(cfg, found.evaluator)
    stopped = _search(cfg, found, storage, study, progress, custom=evaluator is not None)
    study = create_study(open_storage(cfg.storage_url()), cfg.study, cfg.strategy)
    if stopped is not None:
        _stop_cleanly(cfg, study, stopped, found.evaluator)
    return _finish(cfg, study, found.evaluator)


def _start(cfg: SearchConfig, found: Checked, resume: bool):
    """The run folder, its config and its study (a resumed run's unfinished trials queued
    again); only a start that passed its checks gets here."""
    out = Path(cfg.out)
    ev = found.evaluator
    if cfg.workers == 1 and isinstance(ev, evaluators.ProxyEvaluator):
        ev.states = out / "states"  # a trial stopped by a signal resumes its training
    try:
        out.mkdir(parents=True, exist_ok=True)
        cfg.save()
    except OSError as exc:
        raise UserError(f"cannot write the run folder {out}: {exc.strerror or exc}") from None
    storage = found.storage or open_storage(cfg.storage_url(), on_repair=log)
    study = create_study(storage, cfg.study, cfg.strategy)
    study.set_user_attr(CONFIG, cfg.to_dict())  # what `nas worker` on another machine runs
    if resume:
        requeue_unfinished(study, cfg)
    return study, storage


def requeue_unfinished(study: optuna.Study, cfg: SearchConfig) -> None:
    """A resumed run's trials left RUNNING, queued again: on a shared database only those
    whose heartbeats stopped, never another machine's live ones; a journal belongs to this
    machine, so what is RUNNING there is dead."""
    n = requeue_stale(study) if is_database(cfg.storage_url()) else requeue_orphans(
        study, reason="worker died: the run stopped before the trial finished (found by "
                      "--resume)")
    if n:
        log(f"resume: {n} unfinished trial(s) queued again")


def _announce(cfg: SearchConfig, ev: evaluators.Evaluator) -> None:
    if cfg.baselines and not _compares(ev):
        why = "has no entry for zoo networks" if not ev.scores_any_genotype else \
            "is not a training profile (the comparison trains by one)"
        log(f"note: {ev.name} {why}: --baselines are not compared")
    if cfg.reduced_cpu:
        limit = f" or {cfg.time_s / 60:.0f} minutes" if cfg.time_s else ""
        base = f"base networks at 1/{round(1 / cfg.base_fraction)} of the budget, " \
            if cfg.scale else ""
        log(f"no GPU: running a reduced CPU search ({cfg.evaluator}, {base}"
            f"{cfg.trials or 'unlimited'} trials{limit})")


def _compares(ev: evaluators.Evaluator) -> bool:
    """Whether the winner is compared with the baselines: by our proxy's own recipe."""
    return isinstance(ev, evaluators.ProxyEvaluator)


def _search(cfg: SearchConfig, found: Checked, storage, study: optuna.Study, progress: bool,
            custom: bool) -> Interrupted | None:
    """The search and the final choice; the signal that stopped them, if one did."""
    monitor = Monitor(study, cfg, progress)
    monitor.start()
    ev = found.evaluator
    try:
        search_here(cfg, found, storage, custom)
        if is_database(cfg.storage_url()):
            finish_shared(cfg, found, storage, study, custom)
        rescore(study, found.space, ev.evaluate, cfg.plan, cfg.strategy, log,
                cfg.stop.deadline)
    except KeyboardInterrupt as exc:
        ignore_signals()  # the clean stop below must not be cut short by a second one
        # Interrupted, or a candidate's training Paused after saving its state
        return exc if isinstance(exc, Interrupted) else Interrupted(
            getattr(exc, "signum", signal.SIGINT))
    finally:
        monitor.stop()
    return None


def _finish(cfg: SearchConfig, study: optuna.Study, ev: evaluators.Evaluator) -> dict:
    from nas.proxy_comparison import proxy_comparison
    from nas.run_folder import write_outputs

    if best_trial(study) is None:
        c = counts(study)
        write_outputs(cfg, study, None, None)
        raise UserError(f"no candidate was scored ({c['rejected']} rejected, {c['failed']} "
                        f"failed); see {Path(cfg.out) / 'trials.csv'}", code=1)
    summary = write_outputs(cfg, study, best_trial(study), scaled_winner(cfg, study), ev)
    if cfg.baselines and _compares(ev):
        proxy_comparison(cfg, ev, summary)
    return summary


def _stop_cleanly(cfg: SearchConfig, study: optuna.Study, stopped: Interrupted,
                  ev: evaluators.Evaluator) -> None:
    """After SIGINT or SIGTERM: the trials in flight queued again, the run folder written from
    what finished, one line on how to go on; then the signal goes on to the CLI (its exit
    code). Signals are ignored meanwhile (SIGKILL still ends it)."""
    from nas.run_folder import write_outputs

    requeue_interrupted(study, worker_id(), stopped.name)
    best = best_trial(study)
    write_outputs(cfg, study, best, scaled_winner(cfg, study) if best is not None else None,
                  ev)
    c = counts(study)
    n = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
    wrote = "trials.csv, summary.json" + (", report.md, best.yaml, model.py" if best else "")
    log(f"stopped by {stopped.name}: {c['complete']} scored trial(s) kept, {n} queued for "
        f"the resume; wrote {wrote} in {cfg.out}; continue with: nas search --resume "
        f"{cfg.out}")
    raise stopped


def scaled_winner(cfg: SearchConfig, study: optuna.Study
                  ) -> tuple[searchspace.Genotype, searchspace.Genotype, float | None]:
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
