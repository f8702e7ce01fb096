"""NNI as an optional engine: its strategies through our search loop, our spaces as NNI's.

The tests of the adapter need the nni extra (``pip install -e '.[nni]'``) and skip, saying so,
without it; the first two run either way: without the extra nothing imports NNI, and asking for
an NNI strategy says in one line how to install it.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import optuna
import pytest

import nas
import searchspace
from evaluators.table import NB201Table
from nas.strategies import NNI_NAMES
from nas.strategies.synthetic import SyntheticObjective
from nas.loop import Stop, run_worker
from searchspace import Limits

ROOT = Path(__file__).resolve().parents[1]
TABLE = Path(os.environ.get("NAS_NB201", ROOT.parent / "shared" / "data" / "nb201"))
HAVE_NNI = importlib.util.find_spec("nni") is not None
SKIP = "the nni extra is not installed (pip install -e '.[nni]'): NNI adapter test skipped"
needs_nni = pytest.mark.skipif(not HAVE_NNI, reason=SKIP)


def _nas(capsys, *args: str) -> tuple[int, str]:
    """``nas ARGS`` in this process: (exit code, stderr)."""
    from nas.cli import main

    code = main(list(args))
    return code, capsys.readouterr().err


def _one_line(result: tuple[int, str], needle: str) -> None:
    code, err = result
    assert code == 2, err
    assert needle in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err


def test_without_the_extra_an_nni_strategy_says_how_to_install_it(
        capsys, monkeypatch, tmp_path) -> None:
    monkeypatch.setitem(sys.modules, "nni", None)  # as if the extra were not installed
    monkeypatch.delitem(sys.modules, "nas.nni", raising=False)
    monkeypatch.delattr(nas, "nni", raising=False)  # an earlier test's import
    out = tmp_path / "run"
    _one_line(_nas(capsys, "search", "--space", "nb201", "--evaluator", "nb201-table",
                   "--strategy", "nni:evolution", "--trials", "5", "--out", str(out)),
              "pip install -e '.[nni]'")
    assert not out.exists()  # refused before anything was written


def test_nothing_imports_nni_unless_an_nni_strategy_is_asked_for() -> None:
    code = ("import sys, nas, nas.cli, nas.pipeline, nas.loop, nas.compare, searchspace\n"
            "from nas.strategies import make, OURS\n"
            "for name in OURS:\n"
            "    make(name, space=searchspace.load_space('nb201'))\n"
            "print(sorted(m for m in sys.modules if m == 'nni' or m.startswith('nni.')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stderr


@pytest.fixture()
def nni_run(capsys, tmp_path) -> tuple[Path, tuple[int, str]]:
    """The issue's acceptance command: NNI's evolution over NAS-Bench-201, 100 trials."""
    if not (TABLE / "nb201_cifar10_valid.csv").is_file():
        pytest.skip(f"NAS-Bench-201 table not found at {TABLE}")
    out = tmp_path / "run"
    return out, _nas(capsys, "search", "--space", "nb201", "--evaluator", "nb201-table",
                     "--strategy", "nni:evolution", "--trials", "100", "--data", str(TABLE),
                     "--out", str(out))


@needs_nni
def test_nni_evolution_searches_nb201_through_the_cli(nni_run, capsys, tmp_path) -> None:
    out, (code, err) = nni_run
    assert code == 0, err
    # NNI's import notices (gym's, the torch-version warnings) and per-model logs are not shown,
    # and NNI proposed every trial (no random filling after its strategy ended)
    assert "Traceback" not in err and "Gym" not in err and "WARNING" not in err, err
    assert "ended on its own" not in err and "nni" not in capsys.readouterr().out.lower()
    with open(out / "trials.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    ok = [row for row in rows if row["status"] == "ok"]
    assert len(ok) == 100 and len({row["key"] for row in ok}) == 100  # none trained twice
    summary = json.loads((out / "summary.json").read_text())
    assert 100 * summary["best"]["val_accuracy"] == pytest.approx(
        max(float(row["accuracy_pct"]) for row in ok), abs=1e-4)  # csv: 4 places
    assert "nni:evolution" in (out / "report.md").read_text()
    # what NNI cannot do fails in one line, before anything is written
    _one_line(_nas(capsys, "search", "--resume", str(out)), "cannot continue a run")
    common = ["search", "--space", "nb201", "--evaluator", "nb201-table", "--strategy",
              "nni:tpe", "--data", str(TABLE), "--out", str(tmp_path / "x")]
    _one_line(_nas(capsys, *common, "--workers", "2"), "use --workers 1")
    _one_line(_nas(capsys, *common, "--screen", "4"), "--screen works with this project's")
    assert not (tmp_path / "x").exists()


@needs_nni
@pytest.mark.parametrize("strategy", NNI_NAMES)
def test_nni_strategies_reach_the_total_inside_the_budget(strategy, capfd) -> None:
    # NNI has no budget: what it proposes over it is rejected untrained and told it failed
    space = searchspace.load_space("cells")
    objective = SyntheticObjective(space)
    limit = 37.5e6  # 600M at 1/16, the CPU default's base budget: most of the space is over
    trained = []

    def evaluate(g, seed, a):
        trained.append(searchspace.cost(g).madds)
        return objective.evaluate(g, seed, a)
    threads = threading.active_count()
    storage = optuna.storages.InMemoryStorage()
    run_worker(storage, "s", space, strategy, 0, evaluate, Limits(madds=limit), Stop(trials=12),
               log=lambda line: None)
    trials = optuna.load_study(study_name="s", storage=storage).get_trials()
    status = Counter(t.user_attrs["status"] for t in trials)
    assert status["ok"] == 12 and len(trained) == 12 and max(trained) <= limit
    assert status["rejected"] > 0  # NNI did propose networks over the budget
    assert threading.active_count() == threads  # the strategy's thread has ended
    out, err = capfd.readouterr()
    assert not out and "ended on its own" not in err, err  # NNI proposed every trial


@needs_nni
def test_same_seed_same_nni_search() -> None:
    # PPO is the one NNI strategy without a seed of its own; 21 trials include a policy update
    if not (TABLE / "nb201_cifar10_valid.csv").is_file():
        pytest.skip(f"NAS-Bench-201 table not found at {TABLE}")
    ev = NB201Table(TABLE)

    def search(seed: int) -> list[dict]:
        storage = optuna.storages.InMemoryStorage()
        run_worker(storage, "s", searchspace.load_space("nb201"), "nni:rl", seed, ev.evaluate,
                   Limits(), Stop(trials=21), log=lambda line: None)
        return [t.params for t in optuna.load_study(study_name="s", storage=storage)
                .get_trials()]
    assert search(3) == search(3)


@needs_nni
def test_our_space_as_an_nni_model_space_runs_nnis_own_experiment() -> None:
    import nni
    import torch
    from nni.nas.evaluator import FunctionalEvaluator
    from nni.nas.experiment import NasExperiment, NasExperimentConfig
    from nni.nas.strategy import RegularizedEvolution

    import nas.nni

    space = searchspace.load_space("nb201")
    sample = {name: choices[-1] for name, choices in space.decisions.items()}
    frozen = nas.nni.model_space("nb201").freeze(sample)
    assert frozen.genotype.key() == space.genotype(sample).key()
    assert frozen(torch.zeros(2, 3, 32, 32)).shape == (2, 10)

    seen = []

    def evaluate(model) -> None:  # NNI's trial function: the score is the cost, to be exact
        seen.append(model.assignment)
        nni.report_final_result(-searchspace.cost(model.genotype).madds / 1e9)
    config = NasExperimentConfig("sequential", "raw", "local")
    config.max_trial_number = 12
    exp = NasExperiment(nas.nni.model_space("nb201"), FunctionalEvaluator(evaluate),
                        RegularizedEvolution(population_size=6, sample_size=3, seed=0), config)
    exp.run(wait_completion=True, debug=False)  # in-process: no NNI manager, no port
    top = exp.export_top_models(top_k=1, formatter="dict")[0]
    exp.stop()
    assert len(seen) == 12 and set(top) == set(space.decisions)
    assert top in seen
    best = max(seen, key=lambda a: -searchspace.cost(space.genotype(a)).madds)
    assert searchspace.cost(space.genotype(top)).madds == \
        searchspace.cost(space.genotype(best)).madds
