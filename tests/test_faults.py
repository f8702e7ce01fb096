"""Nothing lost, nothing hangs: faults inside a trial, dead workers, signals, torn journals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

import searchspace
from evaluators.proxy import ProxyEvaluator
from evaluators.recipe import Recipe, load_profile
from nas.journal import JournalWriteError, repair
from nas.strategies.synthetic import SyntheticObjective
from nas.loop import Stop, run_worker
from nas.recovery import requeue, requeue_orphans
from nas.storage import create_study, open_storage
from nas.tally import counts, failures
from nas.trial import Record, Status
from searchspace import Limits

LIMITS = Limits(madds=600e6)
SPACE = searchspace.load_space("cells")


def _synthetic_study(path: Path, trials: int) -> optuna.Study:
    """A journal with ``trials`` scored trials (a synthetic objective: no training)."""
    objective = SyntheticObjective(SPACE, seed=0)
    run_worker(open_storage(path), "s", SPACE, "random", 0, objective.evaluate, LIMITS,
               Stop(trials=trials), log=lambda line: None)
    return create_study(open_storage(path), "s", "random")


def _scored(study: optuna.Study) -> dict[int, float]:
    return {t.number: t.values[0] for t in study.get_trials()
            if t.user_attrs.get("status") == Status.OK}


# --- faults inside a trial end that trial -------------------------------------------------

def test_a_candidate_that_raises_fails_alone_and_the_search_reaches_its_total() -> None:
    objective = SyntheticObjective(SPACE, seed=0)
    calls = []

    def evaluate(g, seed, params):
        calls.append(seed)
        if len(calls) == 2:
            raise RuntimeError("building failed: an op the device does not have\nsecond line")
        if len(calls) == 4:  # what a GPU raises; it cannot be made to happen on a CPU
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return objective.evaluate(g, seed, params)

    storage = optuna.storages.InMemoryStorage()
    run_worker(storage, "s", SPACE, "evolution", 0, evaluate, LIMITS, Stop(trials=6),
               log=lambda line: None)
    study = optuna.load_study(study_name="s", storage=storage)
    c = counts(study)
    assert c["complete"] == 4 and c["failed"] == 2 and c["running"] == 0
    reasons = [t.user_attrs["reason"] for t in study.get_trials()
               if t.user_attrs.get("status") == Status.FAILED]
    assert reasons == ["error: RuntimeError: building failed: an op the device does not have",
                       "error: OutOfMemoryError: CUDA out of memory. Tried to allocate 2 GiB"]
    assert failures(study) == {"error": 2}
    assert requeue_orphans(study) == 0  # a resume finds nothing to retry: no retry for ever


def test_a_loss_that_becomes_nan_ends_training_within_a_few_steps(cifar_jpeg) -> None:
    recipe = Recipe(name="nan", split="search", epochs=4, train_subset=2048, batch_size=32,
                    lr=1e12, val_size=500, device="cpu", warmup=0.0)
    ev = ProxyEvaluator(recipe, data=cifar_jpeg)
    r = ev.evaluate(searchspace.scale(searchspace.zoo.get("resnet20"), width=0.25), seed=0)
    assert r.status == "failed" and r.reason.startswith("diverged: loss became")
    step = int(r.reason.split("by step ")[1].split()[0])
    assert step <= 32  # not the end of the first epoch (64 steps), let alone of all four


def test_out_of_memory_is_retried_at_half_the_batch_after_its_traceback_is_gone(monkeypatch
                                                                               ) -> None:
    ev = ProxyEvaluator(Recipe(name="t", split="search", epochs=1, batch_size=64, lr=0.1),
                        device="cpu")
    ev._split = object()  # no data is read: train is replaced below
    batches, handling = [], []

    def train(g, seed, recipe, guard=False, state=None):  # what a GPU raises; no CPU can
        batches.append((recipe.batch_size, recipe.lr))
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(ev, "train", train)
    # memory is freed only once no traceback (which holds the tensors) is being handled
    monkeypatch.setattr("evaluators.proxy._free", lambda: handling.append(sys.exc_info()[0]))
    result, reason = ev._train(searchspace.zoo.get("resnet20"), 0)
    assert batches == [(64, 0.1), (32, 0.05)] and result is None
    assert reason == "out of memory: on the GPU, also at half the batch"
    assert handling == [None, None]


# --- retries keep their decisions and seed, once --------------------------------------------

def test_a_requeued_trial_trains_again_with_the_same_decisions_and_seed() -> None:
    storage = optuna.storages.InMemoryStorage()
    study = create_study(storage, "s", "random")
    trial = study.ask()
    for k, v in SPACE.decisions.items():
        trial.suggest_categorical(k, v)
    trial.set_user_attr("seed", 12345)
    first = Record.of(study.get_trials()[0])
    assert requeue(study, first, Status.ORPHANED, "worker died: killed by SIGKILL")
    retry = study.ask()  # the queued trial comes first
    assert retry.user_attrs["seed"] == 12345 and retry.user_attrs["retry_of"] == 0
    for k, v in SPACE.decisions.items():
        assert retry.suggest_categorical(k, v) == first.decisions[k]
    assert not requeue(study, Record.of(study.get_trials()[1]), Status.ORPHANED,
                       "worker died: again")
    last = study.get_trials()[1]
    assert last.state == TrialState.FAIL and last.user_attrs["status"] == Status.FAILED
    assert "not tried again" in last.user_attrs["reason"]
    assert not study.get_trials(states=(TrialState.WAITING,))


# --- the journal survives torn writes ---------------------------------------------------------

WHOLE = b'{"op_code":8,"worker_id":"w","trial_id":0,"user_attr":{"note":"kept"}}\n'


@pytest.mark.parametrize("damage", [
    b'{"op_code":5,"worker_id":"x","trial_id":3,"sta',  # a torn last line
    b"\x00\x00\x00garbage\nmore garbage\n",  # garbage appended
    WHOLE + b'{"op_code":',  # a whole line, then a torn one
])
def test_a_damaged_journal_is_repaired_at_start_and_loses_nothing_complete(damage, tmp_path
                                                                           ) -> None:
    path = tmp_path / "study.journal"
    before = _scored(_synthetic_study(path, 4))
    whole = path.read_bytes()
    path.write_bytes(whole + damage)
    warnings: list[str] = []
    storage = open_storage(path, on_repair=warnings.append)
    assert len(warnings) == 1 and "cut a damaged tail" in warnings[0]
    kept = path.read_bytes()
    assert kept == whole or kept == whole + WHOLE  # whole lines that parse stay
    aside = list(tmp_path.glob("study.journal.damaged-*"))
    assert len(aside) == 1 and kept + aside[0].read_bytes() == whole + damage
    study = create_study(storage, "s", "random")
    assert _scored(study) == before
    study.tell(study.ask(), 0.5)  # the run goes on: appends after a repair read back whole
    assert len(create_study(open_storage(path), "s", "random").get_trials()) == 5
    assert repair(path) == ""  # a whole journal is left alone


def test_a_line_torn_by_a_killed_writer_mid_run_is_cut_before_the_next_append(tmp_path
                                                                             ) -> None:
    path = tmp_path / "study.journal"
    before = _scored(_synthetic_study(path, 3))
    with open(path, "ab") as f:  # another worker, killed in the middle of its write
        f.write(b'{"op_code":8,"worker_id":"w","trial_id":0,"user_a')
    study = create_study(open_storage(path), "s", "random")  # no start-up repair: mid-run
    study.tell(study.ask(), 0.25)
    study = create_study(open_storage(path), "s", "random")
    assert _scored(study) == before and study.get_trials()[3].values == [0.25]


_DISK_FULL = """
import resource, sys
from nas.storage import create_study, open_storage
study = create_study(open_storage(sys.argv[1]), "s", "random")
trial = study.ask()
size = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_FSIZE, (size + 100, size + 100))  # the disk fills up
try:
    trial.set_user_attr("note", "x" * 5000)
except Exception as exc:
    print(type(exc).__name__, exc)
"""


def test_a_failed_append_leaves_no_torn_line(tmp_path) -> None:
    path = tmp_path / "study.journal"
    before = _scored(_synthetic_study(path, 3))
    size = path.stat().st_size
    r = subprocess.run([sys.executable, "-c", _DISK_FULL, str(path), str(size)],
                       capture_output=True, text=True, timeout=60)
    assert r.stdout.startswith(JournalWriteError.__name__), r.stdout + r.stderr
    assert "File too large" in r.stdout
    text = path.read_bytes()
    assert text.endswith(b"\n") and all(json.loads(line) for line in text.splitlines())
    assert repair(path) == ""
    study = create_study(open_storage(path), "s", "random")
    assert _scored(study) == before  # the ask() that got in is there, running; nothing torn


# --- the CLI: a killed worker, a stopped search ------------------------------------------------

def _trials(out: Path) -> list[optuna.trial.FrozenTrial]:
    return create_study(open_storage(out / "study.journal"), "search", "random").get_trials()


def _wait_for(out: Path, test, timeout: float = 240) -> optuna.trial.FrozenTrial:
    """The first trial of the run in ``out`` for which ``test`` holds, polling its journal."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if (out / "study.journal").is_file():
            for t in _trials(out):
                if test(t):
                    return t
        time.sleep(0.05)
    raise AssertionError("timed out waiting for a trial")


@pytest.fixture()
def slow_profile(tmp_path) -> Path:
    """Trials of 2 to 7 seconds on 2 cores: long enough to be caught in flight."""
    path = tmp_path / "slow.yaml"
    path.write_text("split: search\nepochs: 1\ntrain_subset: 256\nbatch_size: 64\nlr: 0.1\n"
                    "val_size: 200\ndevice: cpu\n")
    return path


def _search(out: Path, profile: Path, data: Path, *args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "nas.cli", "search", "--budget", "100M",
                             "--strategy", "random", "--evaluator", str(profile), "--data",
                             str(data), "--baselines", "", "--out", str(out), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_a_killed_worker_has_its_trial_retried_once_and_the_search_reaches_its_total(
        cifar_jpeg, slow_profile, tmp_path) -> None:
    out = tmp_path / "run"
    p = _search(out, slow_profile, cifar_jpeg, "--trials", "12", "--workers", "3")
    victim = _wait_for(out, lambda t: t.user_attrs.get("status") == Status.TRAINING
                       and t.state == TrialState.RUNNING)
    os.kill(int(victim.user_attrs["worker"].split(":")[1]), signal.SIGKILL)
    stdout, stderr = p.communicate(timeout=600)
    assert p.returncode == 0, stderr
    assert "died: killed by SIGKILL; 1 trial(s) queued again" in stderr
    trials = _trials(out)
    killed = trials[victim.number]
    assert killed.user_attrs["status"] == Status.ORPHANED
    assert killed.user_attrs["reason"] == "worker died: killed by SIGKILL"
    retries = [t for t in trials if t.user_attrs.get("retry_of") == victim.number]
    assert len(retries) == 1 and retries[0].params == killed.params
    assert retries[0].user_attrs["seed"] == killed.user_attrs["seed"]
    assert retries[0].user_attrs["status"] == Status.OK
    c = counts(optuna.load_study(study_name="search",
                                 storage=open_storage(out / "study.journal")))
    assert c["complete"] + c["failed"] == 12 and c["running"] == 0 and c["retried"] == 1
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["failures"] == {"worker died": 1}


def test_sigterm_writes_the_report_and_resume_reaches_the_total(cifar_jpeg, slow_profile,
                                                               tmp_path) -> None:
    out = tmp_path / "run"
    p = _search(out, slow_profile, cifar_jpeg, "--trials", "3")
    running = _wait_for(out, lambda t: t.number >= 1 and t.state == TrialState.RUNNING
                        and t.user_attrs.get("status") == Status.TRAINING)
    p.send_signal(signal.SIGTERM)
    _, stderr = p.communicate(timeout=120)
    assert p.returncode == 128 + signal.SIGTERM, stderr
    assert "stopped by SIGTERM" in stderr and "nas search --resume" in stderr
    assert "Traceback" not in stderr
    assert (out / "report.md").is_file() and (out / "trials.csv").is_file()
    finished = {t.number: t.values for t in _trials(out) if t.state == TrialState.COMPLETE}
    stopped = _trials(out)[running.number]
    assert stopped.user_attrs["status"] == Status.INTERRUPTED and finished

    r = subprocess.run([sys.executable, "-m", "nas.cli", "search", "--resume", str(out),
                        "--json"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    trials = _trials(out)
    assert {t.number: t.values for t in trials if t.number in finished} == finished
    retry = [t for t in trials if t.user_attrs.get("retry_of") == running.number]
    assert len(retry) == 1 and retry[0].user_attrs["seed"] == stopped.user_attrs["seed"]
    assert json.loads(r.stdout.splitlines()[-1])["trials"]["complete"] == 3
    # the stopped training resumed from its saved state (if it had reached a step) to the
    # very score of a training never stopped, and left no state behind
    assert not list((out / "states").glob("*.state"))
    g = searchspace.Genotype.from_yaml(retry[0].user_attrs["genotype"])
    again = ProxyEvaluator(load_profile(slow_profile), data=cifar_jpeg).evaluate(
        g, retry[0].user_attrs["seed"])
    assert retry[0].values == [again.accuracy]


_PARENT = """
import multiprocessing as mp, os, time
from nas.supervisor import _end_with
if __name__ == "__main__":
    child = mp.get_context("spawn").Process(target=_end_with, args=(os.getpid(),))
    child.start()
    print(child.pid, flush=True)
    time.sleep(120)
"""


def test_workers_end_with_their_parent_when_it_is_killed(tmp_path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(_PARENT)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parents[1])
    child = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    deadline = time.time() + 10
    while time.time() < deadline and _alive(child):
        time.sleep(0.1)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status  # a zombie has exited; only its parent's reaping is due
