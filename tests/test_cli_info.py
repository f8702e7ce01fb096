"""`nas info` and `nas zoo` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys

from nas.cli import main


def test_info_table_and_totals(capsys) -> None:
    assert main(["info", "resnet20"]) == 0
    out = capsys.readouterr().out
    assert "stages.2.2.n2" in out and "parameters:     269,722" in out
    assert "multiply-adds:  40,551,050" in out


def test_info_json_of_a_yaml_file(tmp_path, capsys) -> None:
    import searchspace

    path = tmp_path / "mine.yaml"
    searchspace.zoo.get("mobilenetv2").to_yaml(path)
    assert main(["info", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["params"] == 2_236_682 and data["madds"] > 80e6
    assert data["name"] == "mobilenetv2"


def test_zoo_lists_every_network(capsys) -> None:
    import searchspace

    assert main(["zoo"]) == 0
    out = capsys.readouterr().out
    for name in searchspace.zoo.names():
        assert name in out


def test_errors_are_one_line_without_traceback(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("stem: {width: 16}\nstages:\n- {depth: 1, width: 8, cell: {nodes: "
                   "[{inputs: [2], op: conv}], outputs: [1]}}\n")
    for args, needle in ((["info", "nope"], "is neither a genotype file, a zoo network"),
                         (["info", str(bad)], "stages[0].cell.nodes[0].inputs: node 2 does not"),
                         (["info", str(tmp_path / "x.yaml")], "no such file"),
                         (["frobnicate"], "invalid choice")):
        r = subprocess.run([sys.executable, "-m", "nas.cli", *args], capture_output=True,
                           text=True)
        assert r.returncode == 2, args
        assert needle in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
