"""The Python API a researcher scripts: ``nas.search`` with a function of their own,
``nas.scale``, ``nas.export``; the README's example run as it is printed there."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import nas
import searchspace
from nas.trial import Status

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "own_score.py"
NB201 = Path(os.environ.get("NAS_NB201", ROOT.parent / "shared" / "data" / "nb201"))


def score(genotype: searchspace.Genotype) -> float:
    """Module level, so that worker processes can unpickle it."""
    c = searchspace.cost(genotype)
    return c.params / c.madds


def picky(genotype: searchspace.Genotype, seed: int) -> float:
    """Fails for networks with a 5x5 kernel anywhere, as a user's code might."""
    if "kernel: 5" in genotype.to_yaml():
        raise ValueError("no 5x5 kernels here")
    return score(genotype) + 1e-4 * (seed % 3)


def _load(path: Path):
    spec = importlib.util.spec_from_file_location("exported_api", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_example_is_the_example_file_and_runs(tmp_path: Path) -> None:
    source = EXAMPLE.read_text()
    assert source.strip() in (ROOT / "README.md").read_text()
    r = subprocess.run([sys.executable, str(EXAMPLE), str(tmp_path / "model.py")],
                       capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "multiply-adds, 30 trials" in r.stdout and "stages:" in r.stdout
    model = _load(tmp_path / "model.py").Network()
    side = model.resolution
    assert model(torch.zeros(1, 3, side, side)).shape == (1, 10)


def test_a_function_searches_under_the_budget_once_per_network() -> None:
    result = nas.search("cells", picky, budget="40M-madds", trials=25, seed=2)
    assert isinstance(result.best, searchspace.Genotype) and result.final == result.best
    assert searchspace.cost(result.best).madds <= 40e6
    trained = [r for r in result.records if r.status in (Status.OK, Status.FAILED)]
    assert len(trained) == 25 and len({r.key for r in trained}) == 25
    failed = [r for r in trained if r.status == Status.FAILED]
    assert failed and all(r.reason == "error: ValueError: no 5x5 kernels here" for r in failed)
    ok = [r for r in trained if r.status == Status.OK]
    assert result.score == max(r.accuracy for r in ok) and all(r.split == "picky" for r in ok)
    again = nas.search("cells", picky, budget="40M-madds", trials=25, seed=2)
    assert [r.key for r in again.records] == [r.key for r in result.records]


def test_a_run_folder_is_written_as_the_cli_writes_it_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = nas.search("cells", score, budget="200M-madds", trials=6, seed=0, out=out,
                       scale=True)
    for name in ("report.md", "trials.csv", "best.yaml", "base.yaml", "model.py"):
        assert (out / name).is_file(), name
    assert first.folder == out and first.summary["best"]["fill"] > 0.9
    assert searchspace.cost(first.final).madds > 150e6 >= searchspace.cost(first.best).madds
    assert "by score" in (out / "report.md").read_text()
    more = nas.search("cells", score, budget="200M-madds", trials=9, seed=0, out=out,
                      scale=True, resume=True)
    assert sum(r.status == Status.OK for r in more.records) == 9
    with pytest.raises(nas.UserError, match="already holds a run"):
        nas.search("cells", score, budget="200M-madds", trials=9, out=out)


def test_the_cli_cannot_resume_a_python_evaluator_s_run_and_says_how(tmp_path: Path,
                                                                      refused) -> None:
    out = tmp_path / "run"
    nas.search("cells", score, budget="50M-madds", trials=2, out=out)
    err = refused("search", "--resume", str(out))
    assert "scored by 'score'" in err and "nas.search(" in err


def test_several_worker_processes_take_a_module_level_function(tmp_path: Path) -> None:
    result = nas.search("cells", score, budget="40M-madds", trials=6, seed=1, workers=2,
                        storage=str(tmp_path / "study.journal"))
    keys = [r.key for r in result.records if r.status == Status.OK]
    assert len(keys) == 6 == len(set(keys))
    pids = {int(r.worker.split(":")[1]) for r in result.records if r.status == Status.OK}
    assert os.getpid() not in pids  # scored in the worker processes, by the pickled function


def test_bad_input_is_one_line_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(nas.UserError, match="unknown strategy"):
        nas.search("cells", score, budget="40M-madds", strategy="annealing")
    with pytest.raises(nas.UserError, match="give out= .* or storage="):
        nas.search("cells", score, budget="40M-madds", workers=2)
    with pytest.raises(nas.UserError, match="cannot read budget|budget"):
        nas.search("cells", score, budget="lots")
    assert not list(tmp_path.iterdir())


@pytest.mark.skipif(not (NB201 / "nb201_cifar10_valid.csv").exists(), reason="no NB201 table")
def test_an_evaluator_by_name_searches_as_the_cli_does() -> None:
    result = nas.search("nb201", "nb201-table", trials=40, seed=0, data=NB201, strategy="rl")
    assert 0.90 < result.score <= 0.9161 and result.best.name.startswith("|")


def test_scale_and_export(tmp_path: Path) -> None:
    g = nas.scale(searchspace.zoo.get("resnet20"), "300M-madds")
    assert 270e6 < searchspace.cost(g).madds <= 300e6
    written = nas.export(g, tmp_path / "m.py")
    assert written == [tmp_path / "m.py"]
    model = _load(tmp_path / "m.py").Network()
    assert sum(p.numel() for p in model.parameters()) == searchspace.cost(g).params


def test_a_resume_keeps_the_run_s_own_settings(tmp_path: Path) -> None:
    out = tmp_path / "run"
    nas.search("cells", score, budget="50M-madds", trials=3, seed=4, out=out)
    with pytest.raises(nas.UserError, match="with budget='50M-madds', not '60M-madds'"):
        nas.search("cells", score, budget="60M-madds", trials=5, seed=4, out=out, resume=True)
    with pytest.raises(nas.UserError, match="not a run folder"):
        nas.search("cells", score, budget="50M-madds", out=tmp_path / "none", resume=True)


def test_a_study_in_storage_is_refused_again_and_continued_by_resume(tmp_path: Path) -> None:
    journal = str(tmp_path / "study.journal")
    nas.search("cells", score, budget="50M-madds", trials=3, storage=journal)
    with pytest.raises(nas.UserError, match="already holds study 'search'"):
        nas.search("cells", score, budget="50M-madds", trials=5, storage=journal)
    more = nas.search("cells", score, budget="50M-madds", trials=5, storage=journal,
                      resume=True)
    assert sum(r.status == Status.OK for r in more.records) == 5


def test_sqlite_in_the_run_folder_and_the_caller_s_signal_handlers(tmp_path: Path) -> None:
    import signal

    before = signal.getsignal(signal.SIGINT)
    out = tmp_path / "run"
    result = nas.search("cells", score, budget="50M-madds", trials=2, out=out,
                        storage=f"sqlite:///{out}/study.db")
    assert (out / "study.db").is_file() and result.best is not None
    assert signal.getsignal(signal.SIGINT) is before


def test_what_worker_processes_cannot_take_is_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(nas.UserError, match="cannot take this one"):
        nas.search("cells", lambda g: 0.5, budget="50M-madds", workers=2,
                   storage=str(tmp_path / "s.journal"))
    assert not (tmp_path / "s.journal").exists()
