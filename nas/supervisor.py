"""The search's workers on this machine: one in this process, or N supervised processes.

``search_here`` runs the loop in this process (``--workers 1``) or starts a ``Supervisor``,
which owns N worker processes: a worker that dies has its trial failed with the reason and
queued again once (same decisions, same seed), and is replaced while the search has trials
left; on a signal, every worker is stopped and its trial queued.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import secrets
import signal
import sys
import threading
import time
from multiprocessing.connection import wait

import torch
from optuna.storages import BaseStorage
from optuna.trial import TrialState

import evaluators
from nas.checks import Checked, make_evaluator, make_screen
from nas.config import SearchConfig
from nas.errors import UserError
from nas.loop import Stop, run_worker
from nas.recovery import requeue_interrupted, requeue_orphans, worker_id
from nas.storage import create_study, open_storage

__all__ = ["search_here", "Supervisor", "ignore_signals", "MAX_RESTARTS"]

MAX_RESTARTS = 3  # per worker slot: a worker that keeps dying is not started for ever


def search_here(cfg: SearchConfig, found: Checked, storage: BaseStorage,
                custom: bool = False) -> None:
    """The search's workers on this machine, until the search's stop. ``custom``: the
    evaluator is a Python one, handed to worker processes as it is (it must pickle)."""
    ev = found.evaluator
    if cfg.workers == 1:
        run_worker(storage, cfg.study, found.space, cfg.strategy, cfg.seed * 1000,
                   ev.evaluate, cfg.base_limits, cfg.stop, screen=found.screen)
        return
    study = create_study(storage, cfg.study, cfg.strategy)
    Supervisor(cfg, study, cfg.stop, ev if custom else None).run()


def ignore_signals() -> None:
    """SIGINT and SIGTERM ignored from now on (a clean stop must not be cut short)."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _worker(cfg_dict: dict, index: int, parent: int, token: str,
            ev: evaluators.Evaluator | None) -> None:
    """A worker process: its own evaluator and sampler seed, the shared study; its trials
    name it by ``token``, which its parent gave it. It ends with its parent, which owns it;
    a signal is the parent's to handle."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_end_with, args=(parent,), daemon=True).start()
    try:
        _work(SearchConfig.from_dict(cfg_dict), index, worker_id(token=token), ev)
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


def _work(cfg: SearchConfig, index: int, worker: str, ev: evaluators.Evaluator | None
          ) -> None:
    ev = ev or make_evaluator(cfg)
    gpus = torch.cuda.device_count()
    if gpus > 1 and ev.device.type == "cuda":  # one GPU per worker
        ev.use_device(torch.device(f"cuda:{index % gpus}"))
    if ev.device.type == "cpu":
        # each worker its share of the cores: N workers of all cores each thrash (10x slower)
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // cfg.workers))
    space = cfg.search_space()
    run_worker(open_storage(cfg.storage_url()), cfg.study, space, cfg.strategy,
               cfg.seed * 1000 + index, ev.evaluate, cfg.base_limits, cfg.stop,
               screen=make_screen(cfg, space, ev), worker=worker)


class Supervisor:
    """Owns the worker processes of ``--workers N`` (see the module doc)."""

    def __init__(self, cfg: SearchConfig, study, stop: Stop,
                 ev: evaluators.Evaluator | None = None) -> None:
        self.cfg, self.study, self.stop, self.ev = cfg, study, stop, ev
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
            ignore_signals()
            self._stop_all()
            raise

    def _start(self, slot: int) -> None:
        token = secrets.token_hex(4)
        p = self.ctx.Process(target=_worker, daemon=True, args=(
            self.cfg.to_dict(), slot, os.getpid(), token, self.ev))
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
        if p.exitcode != 0:
            why = exit_reason(p.exitcode)
            n = requeue_orphans(self.study, worker=name, reason=f"worker died: {why}")
            log(f"worker {slot} (pid {p.pid}) died: {why}; {n} trial(s) queued again")
        waiting = self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        if (p.exitcode != 0 or (waiting and not self.procs)) and self.restarts > 0 \
                and not self.stop.reached(self.study):
            self.restarts -= 1
            log(f"starting worker {slot} again")
            self._start(slot)

    def _stop_all(self) -> None:
        for p, _ in self.procs.values():
            p.terminate()
        for p, _ in self.procs.values():
            p.join(10)
            if p.exitcode is None:
                p.kill()
                p.join()
        for name in self.ids:  # the parent queues their trials: see nas.pipeline
            requeue_interrupted(self.study, name, "the search stopped")


def exit_reason(code: int) -> str:
    """A process's exit code in words: 'killed by SIGKILL', 'exit code 1'."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
