"""NAS-Bench-Macro inside the framework: its exact networks, one key per network, its table of
three trainings as a noisy evaluator, and a budgeted search on it (the table:
../shared/data/nbmacro, or $NAS_NBMACRO)."""

from __future__ import annotations

import csv
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import evaluators
import searchspace
from evaluators.data import DataError
from evaluators.nbmacro_table import CLASSIFIER_BIAS, JSON_NAME, NBMacroTable
from searchspace import Limits, nbmacro

ROOT = Path(__file__).resolve().parents[1]
TABLE = Path(os.environ.get("NAS_NBMACRO", ROOT.parent / "shared" / "data" / "nbmacro"))
BEST = "22212220"  # 93.13% mean, 85.2M (the data's README)


@pytest.fixture(scope="module")
def table() -> NBMacroTable:
    if not (TABLE / JSON_NAME).is_file():
        pytest.skip(f"NAS-Bench-Macro table not found at {TABLE / JSON_NAME}")
    ev = NBMacroTable(TABLE)
    ev.load()
    return ev


def _g(arch: str) -> searchspace.Genotype:
    return nbmacro.genotype(nbmacro.parse_arch(arch))


def test_every_string_costs_what_the_table_says_and_one_network_has_one_key(table) -> None:
    space = searchspace.load_space("nbmacro")
    keys: dict[str, set[float]] = {}
    for arch, row in table.table.items():
        g = space.genotype(nbmacro.parse_arch(arch))
        c = searchspace.cost(g)
        assert (c.params, c.madds) == (row.params, row.flops + CLASSIFIER_BIAS), arch
        assert g.name == arch and nbmacro.arch_string(nbmacro.parse_arch(arch)) == arch
        keys.setdefault(g.key(), set()).add(row.mean)
    assert len(keys) == 3969  # the benchmark's distinct networks
    assert all(len(means) == 1 for means in keys.values())  # spellings share one result
    assert len({nbmacro.canonical(a) for a in table.table}) == 3969


def test_spellings_of_one_network_share_a_key_and_others_do_not() -> None:
    assert _g("22212220").key() == _g("22212202").key()
    assert _g("11101010").key() == _g("11110001").key() == _g("11101001").key()
    assert nbmacro.canonical("11101001") == nbmacro.canonical("11110001") == "11110010"
    assert nbmacro.canonical("22212202") == "22212220"
    assert _g("22212220").key() != _g("22221220").key()
    assert _g("02000000").key() != _g("20000000").key()  # a first layer always counts
    assert _g("12000000").key() != _g("21000000").key()  # order matters within a stage


def test_built_network_matches_the_counter_and_pytorch(table) -> None:
    g = _g(BEST)
    model = searchspace.build(g)
    c = searchspace.cost(g)
    assert sum(p.numel() for p in model.parameters()) == c.params == table.table[BEST].params
    with FlopCounterMode(display=False) as counter:
        model.eval()(torch.randn(1, 3, 32, 32))
    assert counter.get_total_flops() / 2 == pytest.approx(c.madds - CLASSIFIER_BIAS, rel=1e-9)
    dw = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1]
    assert len(dw) == 7 and {m.kernel_size for m in dw} == {(3, 3), (5, 5)}


def test_cells_sums_are_keyed_whatever_the_order_of_their_inputs() -> None:
    base = searchspace.zoo.get("resnet20")
    cell = searchspace.Cell(nodes=(
        searchspace.Node(inputs=(0,), op="conv", kernel=3, width=1.0, act="relu"),
        searchspace.Node(inputs=(0,), op="conv", kernel=1, width=1.0),
        searchspace.Node(inputs=(1, 2), op="identity", combine="add")), outputs=(3,))
    swapped = searchspace.Cell(nodes=(*cell.nodes[:2], searchspace.Node(
        inputs=(2, 1), op="identity", combine="add")), outputs=(3,))

    def net(c: searchspace.Cell) -> searchspace.Genotype:
        return base.replace(stages=(searchspace.Stage(cell=c, depth=2, width=16),))

    assert net(cell).key() == net(swapped).key()
    assert searchspace.cost(net(cell)) == searchspace.cost(net(swapped))
    concat = [searchspace.Node(**{**n.__dict__, "combine": "concat"}) for n in
              (cell.nodes[2], swapped.nodes[2])]  # a concat's order is its channel order
    assert net(cell.__class__(nodes=(*cell.nodes[:2], concat[0]), outputs=(3,))).key() != \
        net(cell.__class__(nodes=(*cell.nodes[:2], concat[1]), outputs=(3,))).key()


def test_bad_strings_are_refused() -> None:
    for bad in ("2221222", "222122203", "22212230", "abcdefgh", ""):
        with pytest.raises(searchspace.GenotypeError, match="8 digits"):
            nbmacro.parse_arch(bad)


def test_the_reward_is_one_training_chosen_by_the_seed_and_the_worth_is_their_mean(
        table, monkeypatch) -> None:
    a = nbmacro.parse_arch(BEST)
    g = _g(BEST)
    row = table.table[BEST]
    rewards = [table.evaluate(g, seed, a) for seed in range(6)]
    assert [e.accuracy for e in rewards] == [row.accs[s % 3] / 100 for s in range(6)]
    assert len({e.accuracy for e in rewards[:3]}) == 3  # consecutive seeds: other trainings
    assert all(e.worth == pytest.approx(row.mean / 100) for e in rewards)
    mean = evaluators.make("nbmacro-table-mean", data=TABLE).evaluate(g, 1, a)
    assert mean.accuracy == mean.worth == pytest.approx(row.mean / 100)
    over = NBMacroTable(TABLE, Limits(madds=50e6)).evaluate(g, 0, a)
    assert over.status == "rejected" and "madds" in over.reason
    other = table.evaluate(searchspace.zoo.get("resnet20"), 0, {})
    assert other.status == "failed" and "nbmacro" in other.reason
    monkeypatch.delenv("NAS_NBMACRO", raising=False)
    with pytest.raises(DataError, match="NAS_NBMACRO"):
        NBMacroTable(None).load()
    with pytest.raises(DataError, match="no NAS-Bench-Macro table"):
        NBMacroTable("/no/such/folder").load()


def test_best_within_a_budget_is_the_published_one(table) -> None:
    # the data's README, computed from the file by the table's own multiply-adds
    for budget, arch, mean in ((40e6, "11110200", 91.51), (50e6, "21210200", 92.17),
                               (60e6, "21220200", 92.57)):
        best = table.best_within(Limits(madds=budget))
        assert nbmacro.canonical(best.arch) == arch and round(best.mean, 2) == mean
    assert nbmacro.canonical(table.best_within(Limits()).arch) == BEST


def _nas(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nas.cli", *args], capture_output=True,
                          text=True, timeout=300)


def test_budgeted_search_names_what_it_found_and_the_gap_to_the_best(table, tmp_path,
                                                                      refused) -> None:
    out = tmp_path / "run"
    r = _nas("search", "--space", "nbmacro", "--evaluator", "nbmacro-table", "--budget",
             "50M-madds", "--trials", "60", "--data", str(TABLE), "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    found = json.loads((out / "summary.json").read_text())["best"]["table"]
    assert found["best_arch"] == "21210200" and found["regret"] >= 0
    report = (out / "report.md").read_text()
    assert f"`{found['arch']}`" in report and "`21210200` at 92.17%" in report
    rows = list(csv.DictReader(open(out / "trials.csv")))
    scored = [r for r in rows if r["status"] == "ok"]
    assert scored and all(float(r["madds"]) <= 50e6 for r in scored)
    assert len({r["key"] for r in scored}) == len(scored)  # no network trained twice
    assert all(40 < float(r["worth_pct"]) < 100 for r in scored)
    assert "use --space nbmacro" in refused("search", "--space", "nb201", "--evaluator",
                                            "nbmacro-table", "--budget", "50M-madds",
                                            "--data", str(TABLE), "--out", tmp_path / "x")
    _judged_by_the_pipeline_benchmark(out, found, tmp_path / "judged")


def _judged_by_the_pipeline_benchmark(run: Path, found: dict, out: Path) -> None:
    """benchmarks/nbmacro_pipeline.py, which judges real searches by the table, agrees with the
    search's own table verdict and gets the simple rules' picks right."""
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "nbmacro_pipeline.py"),
                        str(run), "--table", str(TABLE), "--out", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    j = json.loads((out / "pipeline.json").read_text())[0]
    assert (j["named"]["arch"], j["named"]["mean"]) == (found["arch"], found["mean"])
    best = j["best_inside"]
    assert best["arch"] == "21210200" and round(best["mean"], 2) == 92.17
    assert j["trained"] == 60 and j["named"]["mean"] <= j["oracle_of_trained"] <= 92.17
    # the network of most parameters inside 50M puts its blocks late, and is poor
    assert j["params_inside"]["arch"] == "00010222" and j["params_inside"]["mean"] < 86
    assert j["random_inside"] < j["random_search_madds"] < j["madds_inside"]["mean"] < 92.17
    assert "random search of 60 networks" in (out / "pipeline.md").read_text()


def test_the_final_choice_trains_the_best_again_and_names_the_best_mean(table, tmp_path,
                                                                       refused) -> None:
    out = tmp_path / "run"
    r = _nas("search", "--space", "nbmacro", "--evaluator", "nbmacro-table", "--budget",
             "50M-madds", "--trials", "30", "--rescore", "3", "--strategy", "random",
             "--data", str(TABLE), "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(open(out / "trials.csv")))
    first = {r["number"]: r for r in rows if r["status"] == "ok"}
    again = [r for r in rows if r["status"] == "rescored"]
    assert len(first) == 24 and len(again) == 6  # 30 trainings in all
    for r in again:  # the first training's seed plus 1 and 2: the other two trainings
        assert int(r["seed"]) - int(first[r["rescore_of"]]["seed"]) in (1, 2)
        assert r["key"] == first[r["rescore_of"]]["key"]
    top3 = sorted(first.values(), key=lambda r: -float(r["accuracy_pct"]))[:3]
    assert {r["rescore_of"] for r in again} == {r["number"] for r in top3}
    best = json.loads((out / "summary.json").read_text())["best"]
    assert len(best["trainings"]) == 3 and 0 <= best["confidence"] <= 1
    means = {r["number"]: float(r["worth_pct"]) for r in top3}  # three trainings: the mean
    assert 100 * best["val_accuracy"] == pytest.approx(max(means.values()), abs=1e-4)
    assert "chosen among the 3 networks of best single scores" in (out / "report.md").read_text()
    assert "--rescore 5 takes 10 of the 10 trials" in refused(
        "search", "--space", "nbmacro", "--evaluator", "nbmacro-table", "--budget", "50M-madds",
        "--trials", "10", "--data", str(TABLE), "--rescore", "5", "--out", tmp_path / "x")
    _the_reports_command_makes_the_run_again(out, rows, tmp_path / "again")


def _the_reports_command_makes_the_run_again(run: Path, rows: list[dict], out: Path) -> None:
    line = next(ln for ln in (run / "report.md").read_text().splitlines()
                if ln.startswith("- command: "))
    argv = shlex.split(line.split("`")[1])
    assert argv[:2] == ["nas", "search"] and "--rescore" in argv and "--trials" in argv
    r = _nas(*argv[1:], "--data", str(TABLE), "--out", str(out))
    assert r.returncode == 0, r.stderr
    again = list(csv.DictReader(open(out / "trials.csv")))
    for row in rows + again:  # this machine's clock, not the network's
        del row["seconds"], row["images_per_s"]
    assert again == rows
