"""What a new user tripped on (issue 29): report figures that were not true, a model.py that
took the wrong input size silently, a silent first decode."""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path

import pytest
import torch

import searchspace
from evaluators.recipe import load_profile
from nas.compare import Row, write_report
from nas.standalone import write_export


def _row(name: str, accs: list[float], seconds: float) -> Row:
    std = torch.tensor(accs).std().item() if len(accs) > 1 else None
    return Row(name, False, 40_000_000, 270_000, 32, sum(accs) / len(accs), std, len(accs),
               seconds, {"cpu_b1": 3.0, "cpu_b256": 300.0})


def _report(tmp_path: Path, rows: list[Row], seeds: int, wall: float = 0.4) -> str:
    write_report(rows, load_profile("proxy-cpu"), None, seeds, wall, tmp_path, "test machine",
                 "nas compare")
    return (tmp_path / "report.md").read_text()


def test_one_seed_shows_no_spread(tmp_path) -> None:
    text = _report(tmp_path, [_row("resnet20", [0.434], 60.0)], seeds=1)
    assert "| 43.40 |" in text and "+-" not in text
    assert "seeds: 1 (one training each: no spread)" in text


def test_several_seeds_show_their_spread_and_what_is_missing(tmp_path) -> None:
    rows = [_row("resnet20", [0.43, 0.44, 0.45], 60.0), _row("vgg16", [0.5, 0.52], 90.0)]
    text = _report(tmp_path, rows, seeds=3)
    assert "| 44.00 +- 1.00 |" in text and "(mean +- standard deviation)" in text
    assert "| 51.00 +- 1.41 (2 of 3 seeds) |" in text


def test_a_report_from_the_cache_states_what_the_trainings_cost(tmp_path) -> None:
    rows = [_row("resnet20", [0.43, 0.44], 60.0), _row("vgg16", [0.5], 90.0)]
    text = _report(tmp_path, rows, seeds=2, wall=0.4)  # everything read from the cache
    assert "the trainings took 3.5 min" in text and "this run's wall time 0.0 min" in text
    assert json.loads((tmp_path / "results.json").read_text())["train_s"] == 210.0


def test_cpu_latencies_come_with_a_caveat(tmp_path) -> None:
    text = _report(tmp_path, [_row("resnet20", [0.434], 60.0)], seeds=1)
    caveat = next(line for line in text.splitlines() if line.startswith("CPU latencies"))
    assert "100x" in caveat and text.index(caveat) < text.index("cpu_b1 ms")


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(f"exported_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def at_56(tmp_path_factory):
    """resnet20 exported at 56x56, as a search scaled up in resolution leaves it."""
    g = searchspace.zoo.get("resnet20").replace(resolution=56)
    path = write_export(g, tmp_path_factory.mktemp("export") / "model.py")[0]
    return path, _load(path)


def test_exported_model_states_its_input_size(at_56) -> None:
    path, module = at_56
    doc = module.__doc__
    assert module.RESOLUTION == 56 and "(N, 3, 56, 56)" in doc
    assert "Input: 56x56 images" in doc and "32x32 images must be resized" in doc
    small = write_export(searchspace.zoo.get("resnet20"), path.with_name("r32.py"))[0]
    assert "Input: 32x32 images, CIFAR-10's own size" in _load(small).__doc__


def test_exported_model_refuses_another_input_size(at_56) -> None:
    model = _load(at_56[0]).build_model().eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 56, 56)).shape == (2, 10)
        with pytest.raises(ValueError, match=r"\(N, C, 56, 56\), got \[2, 3, 32, 32\]: resize"):
            model(torch.randn(2, 3, 32, 32))
        with pytest.raises(ValueError, match="got \\[3, 56, 56\\]"):
            model(torch.randn(3, 56, 56))  # no batch dimension


@pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:DeprecationWarning")
def test_exported_model_still_exports(at_56) -> None:
    """The size check leaves torch.export, tracing (ONNX's exporter) and scripting working."""
    model = _load(at_56[0]).build_model().eval()
    x = torch.randn(2, 3, 56, 56)
    with torch.no_grad():
        want = model(x)
        program = torch.export.export(model, (x,))
        assert torch.allclose(program.module()(x), want)
        with warnings.catch_warnings():
            warnings.simplefilter("error", torch.jit.TracerWarning)
            assert torch.allclose(torch.jit.trace(model, (x,))(x), want)
        scripted = torch.jit.script(model)
        assert torch.allclose(scripted(x), want)
        with pytest.raises(Exception, match="resize them to 56x56"):
            scripted(torch.randn(2, 3, 32, 32))


def test_exported_model_exports_to_onnx(at_56, tmp_path) -> None:
    pytest.importorskip("onnx", reason="the onnx extra is not installed")
    model = _load(at_56[0]).build_model().eval()
    torch.onnx.export(model, (torch.randn(1, 3, 56, 56),), str(tmp_path / "m.onnx"),
                      dynamo=False)
    assert (tmp_path / "m.onnx").stat().st_size > 100_000
