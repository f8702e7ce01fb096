"""Latency budgets: the kernel list, the table file, the predictor against a real timing,
budgets, and a search and a scaling under a latency budget, on this machine's CPU.

The table here is small (resnet20 in three shapes, one round): seconds, not the minutes a
full `nas latency-table` takes.
"""

from __future__ import annotations

import copy
import csv
import json

import pytest
import torch
from torch import fx
from torch.fx.passes.shape_prop import ShapeProp

import nas
import searchspace
from nas.budget import parse_budget
from nas.cli import main
from searchspace.latency import KINDS, LatencyTable, Predictor, TableError, kind, predictor_for
from searchspace.latency_measure import Reference, paired_times
from searchspace.latency_units import _unit, units


@pytest.fixture(scope="module")
def table_path(tmp_path_factory):
    """A real table of this machine, made by the CLI as a user would."""
    path = tmp_path_factory.mktemp("latency") / "table.json"
    assert main(["latency-table", "-o", str(path), "--samples", "0", "--zoo", "resnet20",
                 "--rounds", "1"]) == 0
    return path


def test_kernel_list_is_what_the_network_runs() -> None:
    """Traced a cell at a time, the kernels are those of the whole network's forward pass."""
    g = searchspace.load_space("cells").sample(seed=3)
    with torch.device("meta"):
        gm = fx.symbolic_trace(searchspace.build(g).eval())
    ShapeProp(gm).propagate(torch.empty(1, 3, 32, 32, device="meta"))
    whole = [_unit(gm, n).key for n in gm.graph.nodes if n.op.startswith("call_")]
    assert [u.key for u in units(g)] == whole
    assert sum(k.startswith("Conv2d(") for k in whole) >= 3


def test_kinds() -> None:
    assert kind("Conv2d(32, 32, kernel_size=(3, 3), stride=(1, 1), groups=32, bias=False) "
                "1x32x8x8") == "dwconv"
    assert kind("Conv2d(16, 64, kernel_size=(1, 1), stride=(1, 1), bias=False) 1x16x8x8") == \
        "conv1x1"
    assert kind("Conv2d(3, 16, kernel_size=(3, 3), stride=(1, 1), bias=False) 1x3x32x32") == \
        "conv"
    assert kind("ReLU6(inplace=True) 1x8x4x4") == "act"
    assert kind("function:_operator.add 1x8x4x4 1x8x4x4") == "other"
    assert kind("BatchNorm2d(8, eps=1e-05) 1x8x4x4") == "norm" and "norm" in KINDS
    assert kind("MaxPool2d(kernel_size=3, stride=1, padding=1) 1x8x4x4") == "pool"


def test_prediction_close_to_a_real_timing(table_path) -> None:
    """A network the table was not calibrated on: predicted within 50% of its measured time
    by a table fitted on three networks, on a busy 2-core machine (the benchmark's figures,
    on a quiet one, are in results/latency)."""
    p = predictor_for(str(table_path))
    g = searchspace.zoo.get("resnet32")
    predicted = p.predict(g)
    measured = p.measure([g], rounds=3)[0].ms
    assert abs(predicted - measured) / measured < 0.5, (predicted, measured)
    assert p.predict(searchspace.zoo.get("resnet56")) > predicted  # deeper is slower
    saved = LatencyTable.load(table_path)  # kernels measured for resnet32 were saved
    assert {u.key for u in units(g)} <= saved.kernels.keys()
    assert json.loads(table_path.read_text())["reference"] == Reference.NAME
    assert 0 < saved.reference_ms < 50


def test_tables_of_two_processes_merge_in_one_unit(tmp_path) -> None:
    """Two processes that started the same table fixed their own reference quiet time: the
    kernels the other saved are converted, never mixed in another unit."""
    here = {"device": "cpu", "device_name": "x", "torch": "2", "threads": 1, "batch": 1}
    LatencyTable(here, {"a": 1.0}, reference_ms=0.2).save(tmp_path / "t.json")
    LatencyTable(here, {"b": 2.0}, reference_ms=0.4).save(tmp_path / "t.json")
    merged = LatencyTable.load(tmp_path / "t.json")
    assert (merged.kernels, merged.reference_ms) == ({"a": 2.0, "b": 2.0}, 0.4)
    LatencyTable(here, {}).save(tmp_path / "t.json")  # nothing measured: the file's unit
    assert LatencyTable.load(tmp_path / "t.json").reference_ms == 0.4
    body = json.loads((tmp_path / "t.json").read_text())
    (tmp_path / "t.json").write_text(json.dumps({**body, "reference_ms": None}))
    with pytest.raises(TableError, match="reference_ms must be a positive number"):
        LatencyTable.load(tmp_path / "t.json")  # kernels in no known unit


def test_a_timing_is_paired_with_the_reference() -> None:
    ref = Reference("cpu")
    conv = torch.nn.Conv2d(16, 16, 3).eval()
    x = torch.rand(1, 16, 16, 16)
    with torch.inference_mode():
        times = paired_times({"conv": lambda: conv(x)}, ref)
    ms, ratio = times["conv"]
    assert ms > 0 and ms / ratio >= ref.quiet_ms  # divided by the reference's mean around it


def test_an_older_table_is_measured_again(tmp_path, refused) -> None:
    old = tmp_path / "old.json"
    old.write_text('{"format": "nas-latency-table/1", "kernels": {"k": 1.0}}')
    assert "made by an older nas" in refused("info", "resnet20", "--latency", old)
    assert main(["latency-table", "-o", str(old), "--samples", "0", "--zoo", "resnet20",
                 "--rounds", "1"]) == 0
    assert "k" not in LatencyTable.load(old).kernels


def test_another_machines_table_is_used_as_it_is(table_path, tmp_path) -> None:
    t = LatencyTable.load(table_path)
    t.machine = {**t.machine, "device_name": "Cortex-A76 (4 cores)"}
    foreign = tmp_path / "phone.json"
    t.save(foreign)
    p = predictor_for(str(foreign))
    assert not p.measure_here
    assert p.predict(searchspace.zoo.get("resnet20")) > 0  # every kernel is in the table
    with pytest.raises(TableError, match="another machine's"):
        p.measure([searchspace.zoo.get("resnet20")])
    with pytest.raises(TableError, match="lacks .* kernel.*Cortex-A76.*nas latency-table"):
        p.predict(searchspace.zoo.get("vgg11"))
    t.factors = {}
    t.save(tmp_path / "raw.json")
    with pytest.raises(TableError, match="not calibrated"):
        predictor_for(str(tmp_path / "raw.json"))


@pytest.mark.parametrize("body, message", [
    ("not json {", "not a latency table"),
    ('{"format": "other"}', "not a latency table"),
    ('{"format": "nas-latency-table/2", "machine": {"device": "cpu"}}', "must name"),
    ('{"format": "nas-latency-table/2", "machine": {"device": "cpu", "device_name": "x", '
     '"torch": "2", "threads": 1, "batch": 1}, "kernels": {"k": -1}}', "finite number"),
    ('{"format": "nas-latency-table/2", "machine": {"device": "cpu", "device_name": "x", '
     '"torch": "2", "threads": 1, "batch": 1}, "reference": "other"}', "reference workload"),
    ('{"format": "nas-latency-table/1"}', "made by an older nas"),
])
def test_bad_tables_are_one_line(tmp_path, refused, body, message) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(body)
    assert message in refused("info", "resnet20", "--latency", bad)
    assert message in refused("search", "--budget", f"4ms-latency@{bad}", "--evaluator",
                              "nb201-table", "--space", "nb201", "--out", tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_budgets() -> None:
    limits = parse_budget("600M-madds,500us-latency").limits
    assert (limits.madds, limits.latency_ms, limits.latency_on) == (600e6, 0.5, "cpu")
    assert parse_budget("4ms-latency@CUDA:1").limits.latency_on == "cuda:1"
    assert parse_budget("4ms-latency@tables/phone.json").limits.latency_on == "tables/phone.json"
    assert limits.scaled(0.25).latency_ms == 0.25  # the square root of the share
    with pytest.raises(ValueError, match="Limits.cost"):
        limits.use(searchspace.cost(searchspace.zoo.get("resnet20")))  # never a silent 0


@pytest.mark.parametrize("budget, message", [
    ("0ms-latency", "from 0 to an hour"), ("4ms-latency,5ms-latency", "latency twice"),
    ("4ms", "accepted forms"), ("4ms-latency@cuda", "no CUDA GPU"),
])
def test_bad_budgets_are_one_line(refused, budget, message) -> None:
    if budget.endswith("cuda") and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert message in refused("scale", "resnet20", "--budget", budget)


def test_search_and_scale_under_a_latency_budget(table_path, tmp_path, capsys) -> None:
    """Every scored network's predicted latency is inside the budget, the over-budget ones
    are rejected untrained; the reports and the exported model say so; scaling fills the
    budget (NAS-Bench-201's space: a few distinct kernels, so the table fills quickly)."""
    p = predictor_for(str(table_path))
    budget_ms = round(1.5 * p.predict(searchspace.zoo.get("resnet20")), 3)
    budget = f"{budget_ms}ms-latency@{table_path}"
    base_ms = parse_budget(budget).limits.latency_ms
    r = nas.search("nb201", lambda g: searchspace.cost(g).params / 1e6, budget, trials=4,
                   seed=0, out=tmp_path / "run")
    rows = list(csv.DictReader(open(tmp_path / "run" / "trials.csv")))
    scored = [row for row in rows if row["status"] == "ok"]
    assert len(scored) == 4
    assert all(float(row["latency_ms"]) <= base_ms + 1e-4 for row in scored)
    assert all(float(row["latency_ms"]) > base_ms - 1e-4 for row in rows
               if row["status"] == "rejected")
    latency = r.summary["best"]["latency"]
    assert latency["predicted_ms"] <= budget_ms and latency["measured_ms"] > 0
    assert "Latency of the final network" in (tmp_path / "run" / "report.md").read_text()
    assert "ms measured" in (tmp_path / "run" / "model.py").read_text()[:2000]

    assert main(["scale", "resnet20", "--budget", budget, "--json"]) == 0
    scaled = json.loads(capsys.readouterr().out)
    assert 0.85 * budget_ms <= scaled["latency"]["predicted_ms"] <= budget_ms
    g = nas.scale(searchspace.zoo.get("resnet20"), budget)  # the Python API
    assert 0.85 * budget_ms <= p.predict(g) <= budget_ms


def test_latency_table_refuses_another_machines_file(table_path, tmp_path, refused) -> None:
    t = copy.deepcopy(LatencyTable.load(table_path))
    t.machine["threads"] = 64
    t.save(tmp_path / "t64.json")
    assert "not on this machine" in refused("latency-table", "-o", tmp_path / "t64.json")
    t.machine["device_name"] = "Cortex-A76 (4 cores)"
    with pytest.raises(TableError, match="measured on Cortex-A76.*this machine is"):
        Predictor(t, measure_here=True)  # never fill another machine's table from here
