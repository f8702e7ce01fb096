"""A search shared by machines through a database: `nas worker` joins it; the machine that
started it waits for the others' trials before writing the run folder."""

from __future__ import annotations

import time
from dataclasses import replace

import optuna
from optuna.trial import TrialState

from nas.checks import Checked, check
from nas.config import SearchConfig
from nas.errors import Interrupted, UserError
from nas.loop import Stop
from nas.recovery import requeue_interrupted, requeue_stale, worker_id
from nas.storage import check_storage_url, is_database, open_storage
from nas.strategies import NNI_NAMES
from nas.supervisor import ignore_signals, log, search_here
from nas.tally import counts
from nas.trial import records

__all__ = ["CONFIG", "join_search", "finish_shared"]

CONFIG = "config"  # the study user attribute holding the run's SearchConfig


def join_search(storage_url: str, study_name: str, data: str | None, workers: int) -> dict:
    """`nas worker`: more workers, on this machine, for a search whose study lives in a shared
    database; the run's settings come from the study. Returns the study's counts at the end
    (the machine that started the search writes the run folder)."""
    check_storage_url(storage_url)
    if not is_database(storage_url):
        raise UserError("nas worker joins a search in a database (postgresql://, mysql://, "
                        "sqlite:///file.db); on one machine, use nas search --workers N")
    storage = open_storage(storage_url)
    study = _load(storage, storage_url, study_name)
    cfg = _settings(study, study_name, storage_url, data, workers)
    found = check(cfg)
    log(f"joining {cfg.strategy} search {study_name!r} ({cfg.evaluator}, "
        f"{cfg.trials or 'unlimited'} trials) with {workers} worker(s)")
    try:
        search_here(cfg, found, storage)
    except KeyboardInterrupt as exc:
        ignore_signals()
        name = exc.name if isinstance(exc, Interrupted) else "SIGINT"
        requeue_interrupted(study, worker_id(), name)
        raise
    return counts(study)


def _load(storage, storage_url: str, study_name: str) -> optuna.Study:
    try:
        return optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        raise UserError(f"no study {study_name!r} in {storage_url}; start the search with "
                        f"nas search --storage URL --study {study_name}") from None


def _settings(study: optuna.Study, study_name: str, storage_url: str, data: str | None,
              workers: int) -> SearchConfig:
    """The run's settings as the starting machine saved them, for this machine."""
    saved = study.user_attrs.get(CONFIG)
    if not isinstance(saved, dict):
        raise UserError(f"study {study_name!r} was not started by nas search (no settings)")
    cfg = SearchConfig.from_dict(saved)
    if cfg.strategy in NNI_NAMES:
        raise UserError(f"{cfg.strategy}: NNI's strategies propose from one process; their "
                        "search cannot be joined")
    return replace(cfg, storage=storage_url, workers=workers, data=data or cfg.data)


def finish_shared(cfg: SearchConfig, found: Checked, storage, study: optuna.Study,
                  custom: bool = False) -> None:
    """After this machine's workers stop on a shared database: wait for the trials other
    machines are training, and train here those queued again because their machine died."""
    while _await_others(study, cfg.stop):
        queued = _waiting(study)
        search_here(cfg, found, storage, custom)
        if queued and queued <= _waiting(study):  # none taken: a crash loop ends here
            log(f"{len(queued)} queued trial(s) were not taken: the workers here stopped "
                "without training them; writing the run folder")
            return


def _waiting(study: optuna.Study) -> set[int]:
    return {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,))}


def _await_others(study: optuna.Study, stop: Stop, poll: float = 2.0,
                  every: float = 300.0) -> bool:
    """Wait while other machines train trials of this shared study, so the run folder is
    written from the finished search (trials in flight finish, past --time too, as local
    ones do). True when one of them was queued again (its machine died) and the search has
    room for it: the caller trains it."""
    said: tuple[int, ...] = ()
    last = 0.0
    while True:
        requeue_stale(study, log)
        if _waiting(study) and not stop.reached(study):
            return True
        running = records(study, (TrialState.RUNNING,))
        if not running:
            return False
        numbers = tuple(t.number for t in running)
        if numbers != said or time.monotonic() - last > every:
            where = ", ".join(f"{t.number} ({t.worker or 'starting'})" for t in running)
            log(f"waiting for {len(running)} trial(s) running on other machines before "
                f"writing the run folder: {where}; Ctrl-C writes it from what has finished")
            said, last = numbers, time.monotonic()
        time.sleep(poll)
