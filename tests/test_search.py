"""Strategies and the search loop: quality, budgets, parallel workers, resume, the CLI."""

from __future__ import annotations

import csv
import json
import multiprocessing as mp
import random
import statistics
import subprocess
import sys
from collections import Counter

import optuna
import pytest
from optuna.trial import TrialState

import searchspace
from nas.strategies import OURS, make
from nas.strategies.synthetic import SyntheticObjective, run_synthetic
from nas.loop import Stop, run_worker
from nas.storage import open_storage
from searchspace import Limits

LIMITS = Limits(madds=600e6)


def _best(strategy: str, seed: int, trials: int) -> float:
    storage = optuna.storages.InMemoryStorage()
    space = searchspace.load_space("cells")
    objective = SyntheticObjective(space, seed=seed)
    run_worker(storage, "s", space, strategy, seed, lambda g, s, a: objective.evaluate(g, s, a),
               LIMITS, Stop(trials=trials))
    study = optuna.load_study(study_name="s", storage=storage)
    ok = [t for t in study.get_trials() if t.user_attrs.get("status") == "ok"]
    assert len(ok) == trials
    return max(objective.value(t.params) for t in ok)


def test_strategies_beat_random_on_a_synthetic_objective() -> None:
    seeds = range(4)
    random_mean = statistics.mean(_best("random", s, 100) for s in seeds)
    for strategy in ("evolution", "rl", "tpe"):
        mean = statistics.mean(_best(strategy, s, 100) for s in seeds)
        assert mean > random_mean + 0.02, (strategy, mean, random_mean)


@pytest.mark.parametrize("strategy", OURS)
def test_two_worker_processes_share_one_study(strategy: str, tmp_path) -> None:
    url = str(tmp_path / "study.journal")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=run_synthetic, args=(url, "s", strategy, seed, 12, LIMITS))
             for seed in (1, 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    study = optuna.load_study(study_name="s", storage=open_storage(url))
    trials = study.get_trials()
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    statuses = Counter(t.user_attrs.get("status") for t in trials)
    assert statuses["ok"] == 12  # none lost, none extra
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    for t in trials:
        if t.user_attrs["status"] == "ok":
            assert t.state == TrialState.COMPLETE and t.user_attrs["madds"] <= 600e6
            assert all(v <= 0 for v in t.constraints.values())


def test_own_samplers_stay_inside_the_budget_and_optunas_learn_it() -> None:
    space = searchspace.load_space("cells")
    objective = SyntheticObjective(space)
    for strategy in OURS:
        storage = optuna.storages.InMemoryStorage()
        run_worker(storage, "s", space, strategy, 0,
                   lambda g, s, a: objective.evaluate(g, s, a), Limits(madds=50e6),
                   Stop(trials=15))
        trials = optuna.load_study(study_name="s", storage=storage).get_trials()
        rejected = [t for t in trials if t.user_attrs["status"] == "rejected"]
        for t in rejected:  # never trained, and TPE / NSGA-II see why
            assert t.state == TrialState.PRUNED and t.constraints["madds"] > 0
            assert "accuracy" not in t.user_attrs
        if strategy in ("rl", "evolution", "random"):
            assert not rejected, strategy


def test_samplers_derive_their_state_from_the_study() -> None:
    space = searchspace.load_space("cells")
    objective = SyntheticObjective(space)
    storage = optuna.storages.InMemoryStorage()
    for strategy in ("evolution", "rl"):
        run_worker(storage, strategy, space, strategy, 3,
                   lambda g, s, a: objective.evaluate(g, s, a), LIMITS, Stop(trials=30))
        study = optuna.load_study(study_name=strategy, storage=storage)
        trial = study.ask()
        frozen = study.get_trials(deepcopy=False)[trial.number]
        a = make(strategy, space=space, seed=3).propose(study, frozen, random_for(frozen))
        b = make(strategy, space=space, seed=3).propose(study, frozen, random_for(frozen))
        assert a == b


def _nb201_study(cells: list[tuple[dict, float]]) -> optuna.Study:
    from nas.strategies.base import distributions

    space = searchspace.load_space("nb201")
    study = optuna.create_study(direction="maximize")
    for params, value in cells:
        study.add_trial(optuna.trial.create_trial(
            params=params, distributions=distributions(space), value=value))
    return study


def test_evolution_keeps_the_best_network_among_the_contestants() -> None:
    from nas.strategies.evolution import RegularizedEvolution

    space = searchspace.load_space("nb201")
    best = dict.fromkeys(space.decisions, "nor_conv_3x3")
    others = [dict.fromkeys(space.decisions, "avg_pool_3x3") for _ in range(10)]
    for i, o in enumerate(others):  # ten younger, worse networks, each far from the best
        o[f"e{i % 6}"] = "skip_connect" if i < 6 else "nor_conv_1x1"
    study = _nb201_study([(best, 0.95)] + [(o, 0.5 + i / 100) for i, o in enumerate(others)])
    trial = study.get_trials(deepcopy=False)[-1]

    def near_best(elite: bool) -> int:
        sampler = RegularizedEvolution(space, seed=0, elite=elite)
        children = [sampler.propose(study, trial, random.Random(i)) for i in range(200)]
        return sum(sum(c[n] != best[n] for n in best) == 1 for c in children)

    # aged out of the population, the best still wins the tournaments it enters (5 of 11)
    assert near_best(elite=False) == 0 and 60 < near_best(elite=True) < 120


def test_rl_imitates_the_best_network_it_has_seen() -> None:
    from nas.strategies.rl import ReinforceController

    space = searchspace.load_space("nb201")
    best = dict.fromkeys(space.decisions, "nor_conv_3x3")
    ops = space.decisions["e0"]
    rest = [{n: ops[(i + j) % len(ops)] for j, n in enumerate(space.decisions)}
            for i in range(12)]

    def logp_of_best(imitation: float) -> float:
        rl = ReinforceController(space, seed=0, imitation=imitation)
        rl.learn(best, 0.95)
        for i, p in enumerate(rest):
            rl.learn(p, 0.85 + (i % 3) / 100)
        return rl.policy(rl._index(best))[1].item()

    # the first network only sets the baseline; imitation is what makes the policy learn it
    assert logp_of_best(1.0) > logp_of_best(0.0) + 2.0


def random_for(trial):
    return random.Random(trial.number)


def _nas(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nas.cli", *args], capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture()
def tiny_profile(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text("split: search\nepochs: 1\ntrain_subset: 512\nbatch_size: 64\nlr: 0.1\n"
                    "val_size: 1000\ndevice: cpu\n")
    return path


def test_search_cli_end_to_end(cifar_jpeg, tiny_profile, tmp_path) -> None:
    out = tmp_path / "run"
    r = _nas("search", "--budget", "600M-madds", "--trials", "3", "--evaluator",
             str(tiny_profile), "--data", str(cifar_jpeg), "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    best = summary["best"]
    assert 540e6 <= best["madds"] <= 600e6  # within the budget, and it uses most of it
    assert 0 < best["val_accuracy"] <= 1 and summary["trials"]["complete"] == 3
    g = searchspace.Genotype.from_yaml(best["genotype"])
    assert searchspace.cost(g).madds == best["madds"]
    for name in ("best.yaml", "base.yaml", "model.py", "report.md", "trials.csv",
                 "progress.png", "accuracy_madds.png", "study.journal"):
        assert (out / name).is_file(), name
    rows = list(csv.DictReader(open(out / "trials.csv")))
    assert sum(r["status"] == "ok" for r in rows) == 3 and "kernel" in rows[0]
    assert "reduced CPU search" in r.stderr
    report = (out / "report.md").read_text()
    assert "Against hand-designed networks at the same cost" in report
    assert "resnet20@base budget" in report and "mobilenetv2@base budget" in report
    assert (out / "compare" / "pareto.png").is_file()
    # the next step runs from where the search was started, and says it needs a GPU
    assert f"`nas train {out / 'best.yaml'} --profile full --data {cifar_jpeg}`" in report
    assert "a GPU job (60 epochs" in report
    compared = (out / "compare" / "report.md").read_text()
    assert "+-" not in compared and "the trainings took" in compared  # one seed: no spread
    assert "CPU latencies" in compared


def test_the_same_search_twice_gives_the_same_trials(cifar_jpeg, tiny_profile, tmp_path
                                                     ) -> None:
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        r = _nas("search", "--budget", "300M", "--trials", "2", "--strategy", "evolution",
                 "--seed", "7", "--evaluator", str(tiny_profile), "--data", str(cifar_jpeg),
                 "--baselines", "", "--out", str(out))
        assert r.returncode == 0, r.stderr
        rows = list(csv.DictReader(open(out / "trials.csv")))
        for row in rows:  # wall-clock measurements of this machine, not of the network
            del row["seconds"], row["images_per_s"]
        runs.append(rows)
    assert runs[0] == runs[1] and len(runs[0]) >= 2
    # percent, not a fraction: any network, even untrained, scores about 10% of 10 classes
    assert all(1 < float(row["accuracy_pct"]) <= 100 for row in runs[0] if row["status"] == "ok")


@pytest.mark.parametrize("args,needle", [
    (["--budget", "600Q"], "accepted forms"),
    (["--budget", "600M", "--strategy", "genetic"], "unknown strategy 'genetic'"),
    (["--budget", "600M", "--space", "nope"], "unknown space 'nope'"),
    (["--budget", "600M", "--evaluator", "nope"], "unknown evaluator 'nope'"),
    (["--budget", "600M", "--storage", "redis://localhost"], "unsupported storage"),
    (["--budget", "600M", "--time", "soon"], "cannot read duration"),
    (["--budget", "600M", "--trials", "0"], "--trials must be at least 1"),
    ([], "--budget is required"),
    (["--resume", "/nonexistent/run"], "not a run folder"),
])
def test_search_bad_flags(args, needle, tmp_path, refused) -> None:
    assert needle in refused("search", *args, "--out", tmp_path / "run")
    assert not (tmp_path / "run").exists()  # a start that failed its checks leaves no folder


@pytest.mark.parametrize("args,needle", [
    (["--budget", "2M-madds"], "cheapest has 0.69M madds, over the budget of"),
    (["--budget", "0.5M-madds", "--no-scale"], "no network of the cells space fits"),
])
def test_a_budget_nothing_fits_is_one_line(args, needle, cifar_jpeg, tmp_path, refused) -> None:
    """Checked once the images are read: their size sets every network's cost."""
    assert needle in refused("search", *args, "--data", cifar_jpeg, "--out", tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("space,warned", [("cells", True), ("nb201", False)])
def test_a_depth_changing_proxy_warns_where_the_space_searches_depth(space, warned, tmp_path,
                                                                     capsys) -> None:
    from nas.cli import main

    code = main(["search", "--budget", "600M", "--space", space, "--evaluator",
                 "proxy-cpu-shallow", "--trials", "0", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "--trials must be at least 1" in err  # refused after the checks
    assert ("cannot tell this space's depths apart (stage1_depth, stage2_depth, "
            "stage3_depth)" in err) == warned, err


@pytest.mark.parametrize("strategy", OURS)
def test_a_budget_nothing_fits_stops_at_once(strategy) -> None:
    storage = optuna.storages.InMemoryStorage()
    lines: list[str] = []
    n = run_worker(storage, "s", searchspace.load_space("cells"), strategy, 0,
                   lambda g, s, a: pytest.fail("nothing should be trained"), Limits(madds=1e3),
                   Stop(trials=10), log=lines.append)
    trials = optuna.load_study(study_name="s", storage=storage).get_trials()
    assert n == 0 and len(trials) <= 2 and "fits the budget" in lines[0]
    assert all(t.user_attrs["status"] == "rejected" for t in trials)
