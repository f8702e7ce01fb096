"""Compound scaling lands in [90%, 100%] of a budget; exports stand alone and match exactly."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import searchspace
from nas.budget import parse_budget
from nas.errors import UserError
from nas.standalone import write_export
from nas.scaling import compound, grid_points, scale_to_budget
from searchspace import Limits

BUDGETS = [50e6, 300e6, 600e6, 2e9]


def _bases() -> list[searchspace.Genotype]:
    space = searchspace.load_space("cells")
    return [searchspace.zoo.get("resnet20"), searchspace.zoo.get("mobilenetv2"),
            space.sample(0), space.sample(1), space.sample(2)]


@pytest.mark.parametrize("budget", BUDGETS)
def test_scaled_networks_fill_the_budget(budget: float) -> None:
    for g in _bases():
        r = scale_to_budget(g, Limits(madds=budget))
        madds = searchspace.cost(r.genotype).madds
        assert 0.9 * budget <= madds <= budget, (g.name, budget, madds)
        assert r.genotype.resolution % 8 == 0
        assert all(s.width % 8 == 0 for s in r.genotype.stages)


def test_scaling_down_and_parameter_budgets() -> None:
    g = searchspace.zoo.get("resnet18")  # 555M
    r = scale_to_budget(g, Limits(madds=100e6))
    assert r.phi < 0 and 90e6 <= searchspace.cost(r.genotype).madds <= 100e6
    r = scale_to_budget(searchspace.zoo.get("resnet20"), Limits(madds=600e6, params=1e6))
    c = searchspace.cost(r.genotype)
    assert c.params <= 1e6 and c.madds <= 600e6 and r.ratio >= 0.9


def test_compound_rule_and_grid() -> None:
    g = searchspace.zoo.get("resnet20")
    up = compound(g, 1.0, 1.2, 1.1, 1.15)
    assert [s.depth for s in up.stages] == [4, 4, 4]  # ceil(3 * 1.2)
    assert up.resolution == 40 and up.stages[0].width == 16  # 36.8 -> 40; 17.6 -> 16
    for a, b, c in grid_points():
        assert a >= 1 and b >= 1 and c >= 1 and abs(a * b * b * c * c - 2) < 1e-2


def test_impossible_budget() -> None:
    with pytest.raises(UserError, match="impossible budget"):
        scale_to_budget(searchspace.zoo.get("resnet20"), Limits(madds=1e4))


def _run_isolated(code: str) -> str:
    """Run code where nas, searchspace and evaluators cannot be imported."""
    guard = ("import sys\nfor m in ('nas', 'searchspace', 'evaluators'):\n"
             "    sys.modules[m] = None\n")
    r = subprocess.run([sys.executable, "-c", guard + textwrap.dedent(code)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


def _nets() -> list[searchspace.Genotype]:
    space = searchspace.load_space("cells")
    nets = [searchspace.zoo.get(n) for n in searchspace.zoo.names()]
    nets += [space.sample(s) for s in range(5)]
    nets.append(scale_to_budget(searchspace.zoo.get("mobilenetv2"), Limits(madds=300e6)).genotype)
    nets.append(scale_to_budget(space.sample(4), Limits(madds=200e6)).genotype)
    # NAS-Bench-201: ReLU-conv-BN edges, sums, a zero node feeding a conv, a dead edge, the
    # pool-and-project reduction shortcut
    nets += [searchspace.nb201.genotype(searchspace.nb201.parse_arch(a)) for a in (
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
        "+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
        "|none~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|")]
    return nets


def test_exports_match_the_framework_in_a_fresh_interpreter(tmp_path) -> None:
    cases = []
    for i, g in enumerate(_nets()):
        torch.manual_seed(i)
        model = searchspace.build(g).eval()
        with torch.no_grad():  # non-trivial BN statistics
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.1, 0.1)
                    m.running_var.uniform_(0.5, 1.5)
        ckpt = tmp_path / f"w{i}.pt"
        torch.save(model.state_dict(), ckpt)
        files = write_export(g, tmp_path / f"net{i}.py", "py", ckpt, "test")
        x = torch.randn(2, 3, g.resolution, g.resolution)
        with torch.no_grad():
            torch.save({"x": x, "y": model(x)}, tmp_path / f"io{i}.pt")
        cases.append((str(files[0]), str(files[1]), str(tmp_path / f"io{i}.pt"),
                      searchspace.cost(g).madds, g.name))
    out = _run_isolated(f"""
        import importlib.util, json, torch
        from torch.utils.flop_counter import FlopCounterMode
        worst, flops = 0.0, []
        for py, weights, io, madds, name in {cases!r}:
            spec = importlib.util.spec_from_file_location("exported", py)
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            model = mod.build_model(weights).eval()
            data = torch.load(io, weights_only=True)
            assert data["x"].shape[-1] == mod.RESOLUTION and mod.NUM_CLASSES == 10
            with torch.no_grad():
                worst = max(worst, (model(data["x"]) - data["y"]).abs().max().item())
                counter = FlopCounterMode(display=False)
                with counter:
                    model(data["x"][:1])
            flops.append(abs(counter.get_total_flops() / 2 - madds) / madds)
        print(json.dumps({{"worst": worst, "flops": max(flops)}}))
    """)
    result = json.loads(out)
    assert result["worst"] < 1e-5
    assert result["flops"] < 0.01


def test_exported_file_is_readable_and_keys_match(tmp_path) -> None:
    g = searchspace.zoo.get("densenet100")
    path = write_export(g, tmp_path / "dn.py")[0]
    text = path.read_text()
    assert "class Cell0(nn.Module)" in text and "class Cell1(nn.Module)" in text
    assert "x2 = self.n2(x1)" in text and "RESOLUTION = 32" in text
    assert "769,162" in text
    import importlib.util
    spec = importlib.util.spec_from_file_location("dn", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert set(mod.build_model().state_dict()) == set(searchspace.build(g).state_dict())


def test_pt2_export(tmp_path) -> None:
    g = searchspace.zoo.get("resnet20")
    weights = tmp_path / "w.pt"
    torch.save(searchspace.build(g).state_dict(), weights)
    out = write_export(g, tmp_path / "r20.pt2", "pt2", weights)[0]
    program = torch.export.load(out)
    x = torch.randn(1, 3, 32, 32)
    model = searchspace.build(g).eval()
    model.load_state_dict(torch.load(weights, weights_only=True))
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x), model(x), atol=1e-5, rtol=1e-5)


def _nas(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nas.cli", *args], capture_output=True,
                          text=True)


def test_cli_scale_and_export_of_a_run_folder(tmp_path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    r = _nas("scale", "resnet20", "--budget", "300M-madds", "-o", str(run / "best.yaml"),
             "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert 270e6 <= data["madds"] <= 300e6
    r = _nas("export", str(run), "-o", str(tmp_path / "model.py"))
    assert r.returncode == 0, r.stderr
    assert "resnet20-scaled" in (tmp_path / "model.py").read_text()


def test_cli_bad_input(tmp_path) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"garbage")
    other = tmp_path / "other.pt"
    torch.save(searchspace.build(searchspace.zoo.get("resnet32")).state_dict(), other)
    cases = [
        (("export", "resnet99", "-o", str(tmp_path / "m.py")), "neither a genotype file"),
        (("export", "resnet20", "-o", str(tmp_path / "m.py"), "--weights", str(junk)),
         "not a readable weights file"),
        (("export", "resnet20", "-o", str(tmp_path / "m.py"), "--weights", str(other)),
         "weights do not match the genotype"),
        (("export", "resnet20", "-o", str(tmp_path / "m.py"), "--weights", "nope.pt"),
         "no such weights file"),
        (("scale", "resnet20", "--budget", "10K"), "impossible budget"),
        (("scale", "resnet20", "--budget", "lots"), "accepted forms"),
        (("export", str(tmp_path), "-o", str(tmp_path / "m.py")), "not a run folder"),
    ]
    for args, needle in cases:
        r = _nas(*args)
        assert r.returncode == 2 and needle in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr


@pytest.mark.parametrize("text,limits", [
    ("600M-madds", {"madds": 600e6}), ("0.6G-madds", {"madds": 600e6}), ("600M", {"madds": 600e6}),
    ("450M-macs", {"madds": 450e6}), ("1.2G-flops", {"madds": 600e6}),
    ("3M-params", {"params": 3e6}), ("600M-madds,3M-params", {"madds": 600e6, "params": 3e6}),
])
def test_budgets(text, limits) -> None:
    assert dict(parse_budget(text).limits.items()) == pytest.approx(limits)


@pytest.mark.parametrize("text", ["", "600", "600X-madds", "600M-bytes", "-5M", "1M,2M"])
def test_bad_budgets(text) -> None:
    if text == "600":
        assert parse_budget(text).limits == Limits(madds=600)
        return
    with pytest.raises(UserError):
        parse_budget(text)


def test_exported_module_needs_only_torch() -> None:
    text = Path(__file__).resolve().parents[1].joinpath("nas", "standalone.py").read_text()
    assert "import searchspace" in text  # the exporter uses it; the exported file must not
    g = searchspace.zoo.get("inception")
    from nas.standalone import export_source
    src = export_source(g)
    imports = [line for line in src.splitlines() if line.startswith(("import ", "from "))]
    assert all("torch" in line or "__future__" in line for line in imports)


def test_grid_picks_the_best_scored_coefficients() -> None:
    from nas.scaling import best_coefficients

    g = searchspace.zoo.get("resnet20")
    points = grid_points(step=0.2)
    assert 5 <= len(points) <= 20

    def deeper_is_better(scaled: searchspace.Genotype) -> float:  # a stand-in for the proxy
        return sum(s.depth for s in scaled.stages) - scaled.resolution / 100

    seen = []

    def scored(scaled: searchspace.Genotype) -> float:
        seen.append(searchspace.cost(scaled).madds)
        return deeper_is_better(scaled)

    best, scores = best_coefficients(g, scored, points)
    assert len(scores) == len(points)
    base = searchspace.cost(g).madds
    assert all(1.8 * base <= m <= 2.0 * base for m in seen)  # every point at the same cost
    assert best == max(scores, key=lambda t: t[1])[0]
    r = scale_to_budget(g, Limits(madds=300e6), *best)
    assert 270e6 <= searchspace.cost(r.genotype).madds <= 300e6
