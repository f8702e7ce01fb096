"""NAS-Bench-201 inside the framework: its exact network, its table as an evaluator, and the
strategies measured against it (the table: ../shared/data/nb201, or $NAS_NB201)."""

from __future__ import annotations

import csv
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import nas
import searchspace
from evaluators.data import DataError
from evaluators.table import CSV_NAME, NB201Table
from nas.loop import Stop, run_worker
from searchspace import Limits, nb201

ROOT = Path(__file__).resolve().parents[1]
TABLE = Path(os.environ.get("NAS_NB201", ROOT.parent / "shared" / "data" / "nb201"))
BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|" \
       "nor_conv_3x3~2|"  # cell 9930: 91.55% validation, 184.73M, 1.289M (the README)
DEAD_AND_ZERO = "|none~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|avg_pool_3x3~0|none~1|none~2|"


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    path = TABLE / CSV_NAME
    if not path.is_file():
        pytest.skip(f"NAS-Bench-201 table not found at {path}")
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _g(arch: str) -> searchspace.Genotype:
    return nb201.genotype(nb201.parse_arch(arch))


def test_cost_equals_the_published_table(rows) -> None:
    space = searchspace.load_space("nb201")
    for r in rows[::53]:  # 295 cells across the index; benchmarks/nb201_costs.py does all
        g = space.genotype({d: r[d] for d in nb201.DECISIONS})
        assert g.name == r["arch"]
        written = searchspace.cost(g, prune=False)  # as the benchmark builds and counts it
        assert abs(written.madds / 1e6 - float(r["flops_M"])) <= 1e-3 * float(r["flops_M"])
        assert abs(written.params / 1e6 - float(r["params_M"])) <= 1e-3 * float(r["params_M"])
        built = searchspace.cost(g)  # edges that reach no output are not built
        assert built.madds <= written.madds and built.params <= written.params
        if g.pruned() == g:
            assert built == written


def test_cell_9930_and_dead_edges() -> None:
    c = searchspace.cost(_g(BEST))
    assert round(c.madds / 1e6, 2) == 184.73 and round(c.params / 1e6, 3) == 1.289
    g = _g("|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")
    # node 1's conv reaches no output: same network, same key, as the cell without it
    same = _g("|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")
    assert g.key() == same.key() and searchspace.cost(g) == searchspace.cost(same)
    assert searchspace.cost(g, prune=False).madds > searchspace.cost(g).madds


def test_string_form_round_trips_and_bad_strings_fail() -> None:
    ops = nb201.parse_arch(BEST)
    assert nb201.arch_string(ops) == BEST and _g(BEST).name == BEST
    for bad in ("|nor_conv_3x3~0|", "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|",
                "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|"):
        with pytest.raises(searchspace.GenotypeError):
            nb201.parse_arch(bad)


@pytest.mark.parametrize("arch", [BEST, DEAD_AND_ZERO,
                                  "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"])
def test_built_cells_agree_with_flop_counter(arch) -> None:
    g = _g(arch)
    model = searchspace.build(g)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    c = searchspace.cost(g)
    assert abs(counter.get_total_flops() / 2 - c.madds) <= 0.001 * c.madds
    assert sum(p.numel() for p in model.parameters()) == c.params


def test_zero_edges_give_zeros_and_a_conv_on_zeros_its_bn_bias() -> None:
    # |none~0|: node 1 is zeros; node 2 = conv1x1(x) + conv3x3(zeros); node 3 = conv1x1(node 2)
    g = _g("|none~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|none~0|none~1|nor_conv_1x1~2|")
    cell = searchspace.build(g).stages[0][0]
    ops = [cell.n1, cell.n2, cell.n3, cell.n4, cell.n5]
    assert [type(m).__name__ for m in ops] == ["ReLUConvBN", "Zero", "ReLUConvBN",
                                               "Identity", "ReLUConvBN"]
    x = torch.randn(4, 16, 8, 8)
    with torch.no_grad():
        cell.n3.bn.bias.fill_(0.5)
        cell.train()
        assert torch.allclose(cell.n3(cell.n2(x)), torch.full((4, 16, 8, 8), 0.5))


def test_table_evaluator_scores_cells_and_says_what_it_cannot(rows, monkeypatch) -> None:
    ev = NB201Table(TABLE)
    r = rows[9930]
    a = {d: r[d] for d in nb201.DECISIONS}
    e = ev.evaluate(searchspace.load_space("nb201").genotype(a), 0, a)
    assert e.status == "ok" and e.accuracy == pytest.approx(float(r["valid_acc_200ep"]) / 100)
    other = ev.evaluate(searchspace.zoo.get("resnet20"), 0, {})
    assert other.status == "failed" and "nb201" in other.reason
    monkeypatch.delenv("NAS_NB201", raising=False)
    with pytest.raises(DataError, match="NAS_NB201"):
        NB201Table(None).load()
    with pytest.raises(DataError, match="no NAS-Bench-201 table"):
        NB201Table("/no/such/folder").load()


def _nas(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nas.cli", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


def test_cli_search_with_the_table_is_fast_reproducible_and_named(rows, tmp_path) -> None:
    args = ["search", "--budget", "300M-madds", "--space", "nb201", "--evaluator",
            "nb201-table", "--trials", "100", "--data", str(TABLE), "--json"]
    first = _nas(*args, "--out", str(tmp_path / "a"))
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout.splitlines()[-1])
    assert summary["trials"]["complete"] == 100 and summary["trials"]["reused"] == 0
    report = (tmp_path / "a" / "report.md").read_text()
    found = json.loads((tmp_path / "a" / "summary.json").read_text())["best"]["table"]
    assert found["arch"].replace("|", "\\|") in report and "not scored" in report
    assert searchspace.Genotype.from_yaml(tmp_path / "a" / "base.yaml").name == found["arch"]
    second = _nas(*args, "--out", str(tmp_path / "b"))
    assert second.returncode == 0, second.stderr
    csv_a, csv_b = ((tmp_path / d / "trials.csv").read_text().splitlines() for d in "ab")
    columns = csv_a[0].split(",")
    keep = [i for i, c in enumerate(columns) if c != "seconds"]
    assert [[r.split(",")[i] for i in keep] for r in csv_a] == \
        [[r.split(",")[i] for i in keep] for r in csv_b]  # same seed, same search
    keys = [r.split(",")[columns.index("key")] for r in csv_a[1:]]
    assert len(set(keys)) == len(keys)  # no network trained twice


def test_cli_search_screens_by_a_zero_cost_score(rows, tmp_path) -> None:
    by_cell = {r["arch"]: float(r["params_M"]) for r in rows}
    best = {}
    for k in ("1", "8"):
        r = _nas("search", "--budget", "300M-madds", "--space", "nb201", "--evaluator",
                 "nb201-table", "--trials", "30", "--strategy", "random", "--screen", k,
                 "--screen-by", "params", "--data", str(TABLE), "--out", str(tmp_path / k))
        assert r.returncode == 0, r.stderr
        trials = list(csv.DictReader(open(tmp_path / k / "trials.csv")))
        scored = [t for t in trials if t["status"] == "ok"]
        assert len(scored) == 30 and len({t["key"] for t in scored}) == 30
        assert all(t["screened"] == ("" if k == "1" else "8") for t in scored)
        best[k] = statistics.mean(by_cell[_g_arch(t)] for t in scored)
    assert best["8"] > 1.5 * best["1"]  # the screen's pick (most parameters) was trained
    assert "screening: each trial trained the first of up to 8" in \
        (tmp_path / "8" / "report.md").read_text()


def _g_arch(trial_row: dict[str, str]) -> str:
    return nb201.arch_string({d: trial_row[d] for d in nb201.DECISIONS})


def test_cli_info_train_and_export_take_a_cell_string(cifar_jpeg, tmp_path) -> None:
    cheap = "|skip_connect~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"
    info = _nas("info", cheap)
    assert info.returncode == 0 and cheap in info.stdout and "7.78M" in info.stdout
    r = _nas("train", cheap, "--profile", "proxy-cpu", "--epochs", "0.05", "--data",
             str(cifar_jpeg), "--json")
    assert r.returncode == 0, r.stderr
    assert 0.0 < json.loads(r.stdout)["val_accuracy"] <= 1.0
    r = _nas("export", BEST, "-o", str(tmp_path / "cell.py"))
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "cell.py").read_text()
    assert "class ReLUConvBN" in text and "class PoolProject" in text and BEST in text
    bad = _nas("info", "|nor_conv_3x3~0|+|none~0|")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1


def test_search_refuses_a_table_elsewhere_and_a_missing_table(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("NAS_NB201", raising=False)
    r = _nas("search", "--budget", "300M", "--evaluator", "nb201-table", "--out",
             str(tmp_path / "x"))
    assert r.returncode == 2 and "--space nb201" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x").exists()  # nothing written: the same command can run again
    r = _nas("search", "--budget", "300M", "--space", "nb201", "--evaluator", "nb201-table",
             "--out", str(tmp_path / "y"))
    assert r.returncode == 2 and "--data" in r.stderr and r.stderr.count("\n") == 1
    assert not (tmp_path / "y").exists()


def _search(strategy: str, seed: int, ev: NB201Table, trials: int = 100,
            space: searchspace.SearchSpace | None = None) -> list[optuna.trial.FrozenTrial]:
    storage = optuna.storages.InMemoryStorage()
    run_worker(storage, "s", space or searchspace.load_space("nb201"), strategy, seed,
               ev.evaluate, Limits(), Stop(trials=trials), log=lambda line: None)
    return sorted(optuna.load_study(study_name="s", storage=storage).get_trials(),
                  key=lambda t: t.number)


def test_evolution_and_rl_learn_without_repeating_a_cell(rows) -> None:
    ev = NB201Table(TABLE)
    best = {}
    for strategy in ("evolution", "rl", "random"):
        values = []
        for seed in range(6):
            trials = _search(strategy, seed, ev)
            scored = [t for t in trials if t.user_attrs["status"] == "ok"]
            keys = [t.user_attrs["key"] for t in scored]
            assert len(scored) == 100 and len(set(keys)) == 100, strategy
            assert not [t for t in trials if t.user_attrs["status"] == "reused"], strategy
            values.append(max(t.values[0] for t in scored))
        best[strategy] = statistics.mean(values)
    # 100 seeds (README): random 91.01, evolution and rl about 91.5; six seeds must show it
    assert best["evolution"] > best["random"] + 0.002 and best["rl"] > best["random"] + 0.002
    again = [t.params for t in _search("rl", 1, ev, trials=40)]
    assert again == [t.params for t in _search("rl", 1, ev, trials=40)]  # same seed, same search


@pytest.mark.parametrize("strategy", nas.strategies.OURS)
def test_an_exhausted_space_reuses_results_and_stops(strategy, tmp_path) -> None:
    # 64 assignments but fewer distinct networks (dead edges, zeros): nothing is trained twice
    text = (ROOT / "searchspace" / "spaces" / "nb201.yaml").read_text()
    small = tmp_path / "tiny201.yaml"
    small.write_text(text.replace("[none, skip_connect, nor_conv_1x1, nor_conv_3x3, "
                                  "avg_pool_3x3]", "[none, skip_connect]"))
    space = searchspace.load_space(small)
    keys = {space.genotype(dict(zip(space.decisions, bits))).key()
            for bits in __import__("itertools").product(*space.decisions.values())}
    ev = NB201Table(TABLE)
    trials = _search(strategy, 0, ev, trials=80, space=space)
    trained = [t.user_attrs["key"] for t in trials if t.user_attrs["status"] == "ok"]
    assert sorted(trained) == sorted(keys)  # every network once, none twice
    assert any(t.user_attrs["status"] == "reused" for t in trials)


def test_python_api_after_import_nas() -> None:
    code = ("import nas, searchspace\n"
            "b = nas.parse_budget('600M-madds')\n"
            "s = nas.strategies.make('evolution', space=searchspace.load_space('nb201'))\n"
            "print(b.limits.madds, type(s).__name__)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.split() == ["600000000.0", "RegularizedEvolution"]
