"""Shared fixtures: the real CIFAR-10 JPEG archive when present, small genotypes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_ARCHIVE = ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"


@pytest.fixture(scope="session")
def cifar_jpeg() -> Path:
    """The shared CIFAR-10 JPEG archive (skips when this checkout has no shared/ beside it)."""
    path = Path(os.environ.get("NAS_TEST_DATA", SHARED_ARCHIVE))
    if not path.is_file():
        pytest.skip(f"real CIFAR-10 archive not found at {path}")
    return path


def pytest_terminal_summary(terminalreporter) -> None:
    """Say, at the end of the run, when the NNI adapter's tests were skipped and why."""
    skipped = [r for r in terminalreporter.stats.get("skipped", [])
               if "nni extra is not installed" in str(r.longrepr)]
    if skipped:
        terminalreporter.write_line(
            f"note: {len(skipped)} test(s) of the NNI adapter skipped: the nni extra is not "
            "installed (pip install -e '.[nni]')")
