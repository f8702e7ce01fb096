"""Several workers on one study in a real PostgreSQL (Debian's server, started here)."""

from __future__ import annotations

import csv
import multiprocessing as mp
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from evaluators.base import Evaluation
from nas.strategies.synthetic import run_synthetic
from nas.loop import LATE, _record
from nas.recovery import Heartbeat, requeue_stale
from nas.storage import create_study, open_storage
from nas.trial import Status
from searchspace import Limits

LIMITS = Limits(madds=600e6)


def _tool(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for p in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(p)
    return None


def _unavailable(why: str) -> None:
    """Skip here; fail under CI, whose .ci/run installs PostgreSQL and has shared/ beside the
    checkout, so these tests never skip there."""
    if os.environ.get("CI"):
        pytest.fail(why)
    pytest.skip(why)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    initdb, pg_ctl = _tool("initdb"), _tool("pg_ctl")
    if not (initdb and pg_ctl):
        _unavailable("no PostgreSQL server installed (Debian package postgresql)")
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
    with Heartbeat(study, live._trial_id):  # a machine that is training
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


def test_a_trial_that_never_sent_a_heartbeat_is_stale_after_the_grace_period(postgres_url
                                                                             ) -> None:
    study = create_study(open_storage(postgres_url, heartbeat=(1, 1)), "silent", "evolution")
    silent, live = study.ask(), study.ask()  # silent: its worker died before its first beat
    with Heartbeat(study, live._trial_id):
        assert requeue_stale(study) == 0  # first seen silent now: not yet past the grace
        time.sleep(1.5)
        assert requeue_stale(study) == 1
        trials = study.get_trials()
        assert trials[silent.number].state == TrialState.FAIL
        assert trials[silent.number].user_attrs["status"] == Status.ORPHANED
        assert trials[silent.number].user_attrs["reason"] == "worker died: it sent no heartbeat"
        assert trials[live.number].state == TrialState.RUNNING


NB201 = Path(os.environ.get("NAS_NB201", Path(__file__).resolve().parents[2] / "shared" / "data"
                            / "nb201"))


def test_the_starting_machine_writes_the_run_folder_after_other_machines_finish(
        postgres_url, tmp_path) -> None:
    """`nas search` on a database claims its total while another machine still trains a
    trial: it waits for that trial, and trials.csv and the report include it."""
    if not (NB201 / "nb201_cifar10_valid.csv").exists():
        _unavailable(f"NAS-Bench-201 table not found at {NB201}")
    from evaluators.table import NB201Table
    from nas.loop import Stop, run_worker
    from searchspace import load_space

    table, release = NB201Table(NB201), threading.Event()

    def slow(g, seed, assignment):  # another machine's long training
        release.wait(120)
        return table.evaluate(g, seed, assignment)

    other = threading.Thread(target=run_worker, args=(
        open_storage(postgres_url), "wait", load_space("nb201"), "random", 7, slow,
        Limits(madds=300e6), Stop(trials=1)), kwargs={"log": lambda line: None})
    other.start()
    deadline = time.time() + 60
    while not _running(postgres_url, "wait") and time.time() < deadline:
        time.sleep(0.05)
    assert _running(postgres_url, "wait")
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "nas.cli", "search", "--budget", "300M-madds", "--space", "nb201",
         "--evaluator", "nb201-table", "--data", str(NB201), "--trials", "3", "--strategy",
         "random", "--storage", postgres_url, "--study", "wait", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            s = optuna.load_study(study_name="wait", storage=open_storage(postgres_url))
            if Counter(t.user_attrs.get("status") for t in s.get_trials())["ok"] == 2:
                break
            time.sleep(0.2)
        time.sleep(3)
        assert proc.poll() is None  # it waits for the other machine's trial
        release.set()
        _, err = proc.communicate(timeout=120)
    finally:
        release.set()
        if proc.poll() is None:
            proc.kill()
        other.join(60)
    assert proc.returncode == 0, err
    assert "waiting for 1 trial(s) running on other machines" in err
    with open(out / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["status"] for r in rows] == ["ok", "ok", "ok"]
    assert (out / "report.md").exists()


def test_a_queued_trial_no_worker_here_can_take_ends_the_wait(postgres_url, monkeypatch,
                                                              capsys) -> None:
    """Workers that die at start-up (a refused connection, a broken GPU) do not make the
    starting machine start them again for ever: the run folder is written."""
    import nas.shared as shared
    from nas.config import SearchConfig

    study = create_study(open_storage(postgres_url), "stuck", "evolution")
    study.enqueue_trial({})  # another machine's trial, queued again after it died
    rounds: list[int] = []
    monkeypatch.setattr(shared, "search_here", lambda cfg, ev, storage, custom: rounds.append(1))
    cfg = SearchConfig(budget="300M", trials=5, storage=postgres_url, study="stuck")
    done = threading.Thread(target=shared.finish_shared, args=(cfg, None, None, study),
                            daemon=True)
    done.start()
    done.join(30)
    assert not done.is_alive() and rounds == [1]
    assert "1 queued trial(s) were not taken" in capsys.readouterr().err
