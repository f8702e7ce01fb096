"""benchmarks/campaign.py, rehearsed on the CPU (--dry-run) as the GPU runs it: two calls, the
first stopped at its deadline, the second on a fresh folder restored from the first's archive.
The report comes out complete, and nothing is trained twice."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CAMPAIGN = ROOT / "benchmarks" / "campaign.py"


def _call(out: Path, pack: Path, data: Path, minutes: float, *more: str) -> str:
    env = dict(os.environ, OUT=str(pack))
    r = subprocess.run([sys.executable, str(CAMPAIGN), "--dry-run", "--out", str(out),
                        "--data", str(data), "--minutes", str(minutes), *more],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stderr


def _stopped_call(out: Path, pack: Path, data: Path, during: str) -> str:
    """A call stopped by SIGTERM (as the device's time limit stops it) two seconds after the
    line ``during`` appears in its output."""
    env = dict(os.environ, OUT=str(pack))
    proc = subprocess.Popen([sys.executable, str(CAMPAIGN), "--dry-run", "--out", str(out),
                             "--data", str(data), "--minutes", "5"], stderr=subprocess.PIPE,
                            text=True, env=env)
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if during in line:
            threading.Timer(2.0, proc.send_signal, (signal.SIGTERM,)).start()
    assert proc.wait(timeout=600) == 0, "".join(lines)[-3000:]
    return "".join(lines)


def test_the_campaign_runs_in_two_calls_and_trains_nothing_twice(cifar_jpeg, tmp_path) -> None:
    first, second = tmp_path / "call1", tmp_path / "call2"
    err1 = _stopped_call(first, tmp_path / "out1", cifar_jpeg, "[found seed 0] comparing")
    state = json.loads((first / "campaign.json").read_text())
    assert state["pieces"]["search"]["done"]
    assert state["pieces"]["found seed 0"]["exit"] == 128 + signal.SIGTERM
    assert "Not complete" in (first / "report.md").read_text()
    assert "stopping it (SIGTERM)" in err1
    assert list((first / "work" / "compare" / "cache").glob("*.state"))  # saved mid-training
    archive = tmp_path / "out1" / "campaign.tar.gz"
    assert archive.is_file()

    plan = subprocess.run([sys.executable, str(CAMPAIGN), "--dry-run", "--plan", "--out",
                           str(second), "--restore", str(archive), "--data", str(cifar_jpeg)],
                          capture_output=True, text=True)
    assert plan.returncode == 0 and "done" in plan.stdout and "left" in plan.stdout

    err2 = _call(second, tmp_path / "out2", cifar_jpeg, 5)
    assert "resuming searched seed 0 from" in err2
    report = (second / "report.md").read_text()
    assert "Complete: every piece is done; nothing is missing." in report
    assert "Not trained yet" not in report
    for name in ("searched", "resnet20", "resnet20@8M-madds"):
        assert re.search(rf"\| \**{re.escape(name)}\** \| .* \+- ", report), name
    for f in ("best.yaml", "model.py", "pareto.png"):
        assert (second / f).is_file(), f
    # every training of the comparison ran once, over both calls (a resumed one included)
    trained = re.findall(r"\] ([\w@.-]+) seed (\d): [\d.]+% on the [\w -]+ images \(\d+s",
                         err1 + err2)
    assert trained and max(Counter(trained).values()) == 1, Counter(trained)
    assert len(trained) == 6  # searched, resnet20, resnet20@8M: two seeds each
    with (second / "work" / "searched" / "trials.csv").open() as f:
        ok = [(r["key"], r["seed"]) for r in csv.DictReader(f) if r["status"] == "ok"]
    assert len(ok) == len(set(ok)) == 4
    assert not list(second.rglob("*.state"))  # no state left once everything is done


def test_the_probe_rehearses_on_the_cpu_and_its_choice_goes_into_the_recipes(tmp_path) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import campaign_plan

    from evaluators.recipe import load_profile

    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_probe.py"), "--dry-run",
                        "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    probe = json.loads((tmp_path / "probe.json").read_text())
    layouts = {(t["network"], t["channels_last"]) for t in probe["training"]}
    assert len(layouts) == 4 and all(t["images_per_s"] > 0 for t in probe["training"])
    assert probe["depthwise"] and all(d["channels_last"]["ms"] > 0 for d in probe["depthwise"])
    assert "| 600M (CPU search's) | NCHW |" in (tmp_path / "probe.md").read_text()

    (tmp_path / "probe.json").write_text(json.dumps(
        {**probe, "fastest": {"channels_last": False, "compile": True}}))
    setup = campaign_plan.real_setup(tmp_path / "profiles", tmp_path / "probe.json")
    full, proxy = load_profile(setup.profile), load_profile(setup.search_profile)
    assert (full.name, full.channels_last, full.compile, full.epochs) == ("full", False, True, 60)
    assert (proxy.name, proxy.channels_last, proxy.compile) == ("proxy-gpu", False, False)
    # the copies made on the first call stay: every network trains by one recipe
    (tmp_path / "probe.json").write_text(json.dumps({"fastest": {"channels_last": True,
                                                                 "compile": False}}))
    again = campaign_plan.real_setup(tmp_path / "profiles", tmp_path / "probe.json")
    assert load_profile(again.profile) == full
