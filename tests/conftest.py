"""Shared fixtures: the real CIFAR-10 JPEG archive when present, small genotypes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_ARCHIVE = ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"
# a script run by a test in its own process: not collected (--doctest-modules would run it)
collect_ignore = ["pinned_training.py"]


@pytest.fixture(scope="session")
def cifar_jpeg() -> Path:
    """The shared CIFAR-10 JPEG archive (skips when this checkout has no shared/ beside it)."""
    path = Path(os.environ.get("NAS_TEST_DATA", SHARED_ARCHIVE))
    if not path.is_file():
        pytest.skip(f"real CIFAR-10 archive not found at {path}")
    return path


@pytest.fixture
def refused(capsys):
    """``refused(*argv)``: run ``nas argv`` in this process (the CLI's own entry point, a
    subprocess's 3 s of imports saved) and return its stderr, asserting exit 2 and one line
    without a traceback."""
    from nas.cli import main

    def run(*argv: str) -> str:
        capsys.readouterr()
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse's own refusals
            code = exc.code
        err = capsys.readouterr().err
        assert code == 2, err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        return err

    return run


def pytest_terminal_summary(terminalreporter) -> None:
    """Say, at the end of the run, when the NNI adapter's tests were skipped and why."""
    skipped = [r for r in terminalreporter.stats.get("skipped", [])
               if "nni extra is not installed" in str(r.longrepr)]
    if skipped:
        terminalreporter.write_line(
            f"note: {len(skipped)} test(s) of the NNI adapter skipped: the nni extra is not "
            "installed (pip install -e '.[nni]')")
