"""`nas compare`: like-for-like training, a cached rerun, the Pareto front, the report."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import searchspace
from evaluators.recipe import load_profile
from nas.compare import Row, pareto
from searchspace import Limits


def _nas(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nas.cli", *args], capture_output=True,
                          text=True, timeout=600)


def _row(name: str, madds: int, acc: float) -> Row:
    return Row(name, False, madds, 1, 32, acc, 0.0, 1, 1.0, {})


def test_pareto_front() -> None:
    rows = [_row("a", 10, 0.5), _row("b", 20, 0.6), _row("c", 30, 0.55), _row("d", 30, 0.7),
            _row("e", 10, 0.5)]
    pareto(rows)
    assert [r.pareto for r in rows] == [True, True, False, True, True]


@pytest.fixture()
def found(tmp_path):
    space = searchspace.load_space("cells")
    g = next(space.sample(s) for s in range(100)
             if 5e6 < searchspace.cost(space.sample(s)).madds < 30e6)
    path = tmp_path / "found.yaml"
    g.replace(name="found").to_yaml(path)
    return path


def test_compare_report_json_and_a_rerun_that_trains_nothing(cifar_jpeg, found, tmp_path):
    profile = tmp_path / "tiny.yaml"
    profile.write_text("split: search\nepochs: 1\ntrain_subset: 512\nbatch_size: 64\nlr: 0.1\n"
                       "val_size: 1000\ndevice: cpu\n")
    out = tmp_path / "cmp"
    args = ["compare", str(found), "--baselines", "resnet20,mobilenetv2", "--profile",
            str(profile), "--data", str(cifar_jpeg), "-o", str(out), "--json"]
    r = _nas(*args)
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout.strip().splitlines()[-1])["rows"]
    assert [x["name"] for x in rows] == sorted((x["name"] for x in rows),
                                                key=lambda n: next(y["madds"] for y in rows
                                                                   if y["name"] == n))
    assert {x["name"] for x in rows} == {"found", "resnet20", "mobilenetv2"}
    for x in rows:
        assert 0 < x["accuracy"] <= 1 and x["accuracy_std"] is None  # one seed: no spread
        assert x["latency_ms"]["cpu_b1"] > 0 and x["latency_ms"]["cpu_b256"] > 0
        assert set(x) >= {"madds", "params", "seconds"}
    assert any(x["pareto"] for x in rows)
    report = (out / "report.md").read_text()
    for name in ("found", "resnet20", "mobilenetv2", "proxy run", "torch"):
        assert name in report
    for name in ("pareto.png", "params.png", "results.json"):
        assert (out / name).stat().st_size > 1000
    cache = sorted((out / "cache").glob("*.json"))
    stamps = {p: p.stat().st_mtime_ns for p in cache}

    again = _nas(*args)
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("(cached)") == 3
    assert json.loads(again.stdout.strip().splitlines()[-1])["rows"] == rows
    assert {p: p.stat().st_mtime_ns for p in cache} == stamps
    # all cached, yet the report states what the trainings cost, from their own records
    trained = sum(json.loads(p.read_text())["seconds"] for p in cache if "latency" not in p.name)
    assert json.loads((out / "results.json").read_text())["train_s"] == round(trained, 1) > 0
    assert f"the trainings took {trained / 60:.1f} min" in (out / "report.md").read_text()

    # an interrupted compare: one result missing is the only one trained again
    missing = next(p for p in cache if "latency" not in p.name)
    missing.unlink()
    third = _nas(*args)
    assert third.returncode == 0 and third.stderr.count("(cached)") == 2


def test_cache_is_keyed_by_what_changes_a_result() -> None:
    from nas.compare import recipe_key

    recipe = load_profile("proxy-cpu")
    key = recipe_key(recipe)
    assert key == recipe_key(load_profile("proxy-cpu"))
    assert key == recipe_key(recipe.replace(name="renamed", time_limit=5.0, epochs=1.0,
                                            eval_batch_size=10, device=""))
    # a changed profile under the same name trains again
    assert len({key, recipe_key(recipe.replace(train_subset=16000)),
                recipe_key(recipe.replace(depth_mult=0.5)), recipe_key(recipe.replace(lr=0.2))
                }) == 4


def test_budget_adds_scaled_baselines() -> None:
    from nas.compare import entries_for

    entries = entries_for([], ["resnet20", "mobilenetv2"], Limits(madds=300e6), "300M")
    names = [e.name for e in entries]
    assert names == ["resnet20", "resnet20@300M", "mobilenetv2", "mobilenetv2@300M"]
    for e in entries[1::2]:
        assert 270e6 <= searchspace.cost(e.genotype).madds <= 300e6


@pytest.mark.parametrize("args,needle", [
    (["--baselines", "resnet99"], "unknown baseline 'resnet99'"),
    (["--baselines", ""], "nothing to compare"),
    (["--seeds", "0", "--baselines", "resnet20"], "--seeds must be at least 1"),
    (["nope.yaml"], "no such file"),
])
def test_compare_bad_input(args, needle, refused) -> None:
    assert needle in refused("compare", *args)
