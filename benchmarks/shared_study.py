"""Many workers on one database study: every trial recorded once, a killed worker's retried.

    python benchmarks/shared_study.py --storage postgresql://user@host/db
                                      [--workers 8] [--trials 160] [--seconds 0.2] [--kill 1]

Starts ``--workers`` processes at once on a fresh study of the synthetic objective (each
evaluation sleeps ``--seconds``, as training would), SIGKILLs ``--kill`` of them while they
hold a trial, and prints a table: trials recorded, trial numbers seen twice, networks trained
twice, trials left RUNNING or WAITING, killed trials and their retries, and seconds. The
heartbeat is 1 s and the grace period 3 s, so a dead worker's trial is retried within seconds.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import signal
import time
from collections import Counter

import optuna

from nas.report_table import table
from nas.strategies.synthetic import run_synthetic
from nas.storage import create_study, open_storage
from nas.trial import Status, records
from searchspace import Limits

HEARTBEAT = (1, 3)
LIMITS = Limits(madds=600e6)


def _holding(url: str, study: str, pids: set[int]) -> int | None:
    """A pid among ``pids`` whose worker is training a trial now."""
    s = optuna.load_study(study_name=study, storage=open_storage(url, heartbeat=HEARTBEAT))
    for t in records(s):
        if t.status == Status.TRAINING and t.state.name == "RUNNING":
            pid = int(str(t.worker or ":0").split(":")[1])
            if pid in pids:
                return pid
    return None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--storage", required=True, help="a database URL (postgresql://...)")
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--trials", type=int, default=160, help="scored trials in all")
    p.add_argument("--seconds", type=float, default=0.2, help="time of one evaluation")
    p.add_argument("--kill", type=int, default=1, help="workers SIGKILLed mid-trial")
    args = p.parse_args()

    name = f"bench-{time.strftime('%Y%m%d-%H%M%S')}"
    create_study(open_storage(args.storage, heartbeat=HEARTBEAT), name, "evolution")
    ctx = mp.get_context("spawn")
    start = time.perf_counter()
    procs = [ctx.Process(target=run_synthetic, args=(args.storage, name, "evolution", seed,
                                                     args.trials, LIMITS),
                         kwargs={"seconds": args.seconds, "heartbeat": HEARTBEAT})
             for seed in range(1, args.workers + 1)]
    for proc in procs:
        proc.start()
    killed: list[int] = []
    alive = {proc.pid for proc in procs}
    while len(killed) < args.kill and time.perf_counter() - start < 300:
        pid = _holding(args.storage, name, alive - set(killed))
        if pid is None:
            time.sleep(0.05)
            continue
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)
    for proc in procs:
        proc.join(600)
    seconds = time.perf_counter() - start

    trials = records(optuna.load_study(study_name=name, storage=open_storage(args.storage)))
    status = Counter(t.status for t in trials)
    numbers = Counter(t.number for t in trials)
    keys = Counter(t.key for t in trials if t.status == Status.OK)
    orphans = [t for t in trials if t.status == Status.ORPHANED]
    retried = [t for t in trials if t.retry_of in {o.number for o in orphans}]
    same_seed = sum(r.seed == trials[r.retry_of].seed for r in retried)
    rows = [[args.workers, len(killed), len(trials), status[Status.OK],
             sum(n > 1 for n in numbers.values()), sum(n > 1 for n in keys.values()),
             sum(t.state.name in ("RUNNING", "WAITING") for t in trials), len(orphans),
             f"{len(retried)} ({same_seed} same seed)", f"{seconds:.1f}"]]
    print(table(["workers", "killed", "trials", "scored", "numbers twice", "trained twice",
                 "left running", "orphaned", "retries", "seconds"], rows))
    print(f"exit codes: {sorted(proc.exitcode for proc in procs)}; study {name!r}")


if __name__ == "__main__":
    main()
