"""Several workers on one study in a real PostgreSQL (Debian's server, started here)."""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from evaluators.proxy import Evaluation
from nas.strategies.synthetic import run_synthetic
from nas.study import (
    LATE,
    Status,
    _Heartbeat,
    _record,
    create_study,
    open_storage,
    requeue_stale,
)
from searchspace import Limits

LIMITS = Limits(madds=600e6)


def _tool(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for p in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(p)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    initdb, pg_ctl = _tool("initdb"), _tool("pg_ctl")
    if not (initdb and pg_ctl):
        missing = "no PostgreSQL server installed (Debian package postgresql)"
        if os.environ.get("CI"):  # .ci/run installs it: there these tests never skip
            pytest.fail(missing)
        pytest.skip(missing)
    import psycopg  # noqa: F401 - in the test extra
    as_user: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        if not shutil.which("runuser"):
            pytest.skip("running as root without runuser")
        as_user = ["runuser", "-u", "postgres", "--"]
    root = Path(tempfile.mkdtemp(prefix="nas-pg-"))
    data = root / "data"
    if as_user:
        shutil.chown(root, "postgres")
    port = _free_port()
    subprocess.run(as_user + [initdb, "-D", str(data), "-U", "nas", "--auth=trust"],
                   check=True, capture_output=True)
    subprocess.run(as_user + [pg_ctl, "-D", str(data), "-l", str(root / "log"), "-w", "-o",
                              f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start"],
                   check=True, capture_output=True)
    try:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=port, user="nas", dbname="postgres",
                             autocommit=True) as conn:
            conn.execute("CREATE DATABASE search")
        yield f"postgresql://nas@127.0.0.1:{port}/search"
    finally:
        subprocess.run(as_user + [pg_ctl, "-D", str(data), "-m", "fast", "stop"],
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def _workers(url: str, study: str, seeds, trials: int, **kw) -> list:
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=run_synthetic, args=(url, study, "evolution", s, trials, LIMITS),
                         kwargs=kw) for s in seeds]
    for p in procs:
        p.start()
    return procs


def test_four_workers_started_at_once_record_every_trial_once(postgres_url) -> None:
    create_study(open_storage(postgres_url), "pg", "evolution")  # as `nas search` does first
    for p in _workers(postgres_url, "pg", (1, 2, 3, 4), 20):
        p.join(180)
        assert p.exitcode == 0
    trials = optuna.load_study(study_name="pg", storage=open_storage(postgres_url)).get_trials()
    statuses = Counter(t.user_attrs.get("status") for t in trials)
    assert statuses["ok"] == 20 and not statuses["training"]
    assert len({t.number for t in trials}) == len(trials)
    keys = [t.user_attrs["key"] for t in trials if t.user_attrs.get("status") == "ok"]
    assert len(keys) == len(set(keys))  # no network trained twice


def _running(url: str, study: str) -> list[optuna.trial.FrozenTrial]:
    s = optuna.load_study(study_name=study, storage=open_storage(url))
    return [t for t in s.get_trials() if t.state == TrialState.RUNNING
            and t.user_attrs.get("status") == Status.TRAINING]


def test_a_killed_workers_trial_is_retried_once_while_the_others_go_on(postgres_url) -> None:
    create_study(open_storage(postgres_url), "kill", "evolution")
    beat = (1, 3)  # heartbeat every second, stale after 3
    procs = _workers(postgres_url, "kill", (1, 2), 8, seconds=1.0, heartbeat=beat)
    deadline = time.time() + 120
    while not _running(postgres_url, "kill") and time.time() < deadline:
        time.sleep(0.05)
    victim = _running(postgres_url, "kill")[0]
    pid = int(victim.user_attrs["worker"].split(":")[1])
    os.kill(pid, signal.SIGKILL)
    for p in procs:
        p.join(180)
    assert sorted(p.exitcode for p in procs) == [-signal.SIGKILL, 0]
    trials = optuna.load_study(study_name="kill", storage=open_storage(postgres_url)
                               ).get_trials()
    killed = trials[victim.number]
    assert killed.user_attrs["status"] == Status.ORPHANED
    assert killed.user_attrs["reason"] == "worker died: its heartbeats stopped"
    retries = [t for t in trials if t.user_attrs.get("retry_of") == victim.number]
    assert len(retries) == 1 and retries[0].user_attrs["status"] == Status.OK
    assert retries[0].user_attrs["seed"] == killed.user_attrs["seed"]
    assert retries[0].params == killed.params
    assert Counter(t.user_attrs.get("status") for t in trials)["ok"] == 8
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]


def test_resume_from_another_machine_leaves_live_trials_alone(postgres_url) -> None:
    study = create_study(open_storage(postgres_url, heartbeat=(1, 3)), "live", "evolution")
    dead, live = study.ask(), study.ask()
    study._storage.record_heartbeat(dead._trial_id)  # then its machine went silent
    with _Heartbeat(study, live._trial_id):  # a machine that is training
        time.sleep(4.5)
        assert requeue_stale(study) == 1  # what --resume does on a database
        states = {t.number: t.state for t in study.get_trials()}
        assert states[dead.number] == TrialState.FAIL
        assert states[live.number] == TrialState.RUNNING
    study.tell(live, 0.5)  # the live trial finishes as usual
    assert study.get_trials()[live.number].state == TrialState.COMPLETE


def test_a_late_result_of_a_trial_failed_as_stale_is_kept(postgres_url) -> None:
    study = create_study(open_storage(postgres_url, heartbeat=(1, 1)), "late", "evolution")
    trial = study.ask()
    study._storage.record_heartbeat(trial._trial_id)
    time.sleep(2.5)  # a stalled machine: no heartbeat
    assert requeue_stale(study) == 1
    lines: list[str] = []
    _record(study, trial, Evaluation("ok", 1000, 10, 0.42), "evolution", lines.append)
    assert "failed as stale" in lines[0]
    assert study.user_attrs[LATE.format(trial.number)]["accuracy"] == 0.42
    assert study.get_trials()[trial.number].state == TrialState.FAIL


def test_bad_database_url_is_one_line() -> None:
    from nas.errors import UserError

    with pytest.raises(UserError, match="cannot open storage"):
        open_storage(f"postgresql://nobody@127.0.0.1:{_free_port()}/none")
