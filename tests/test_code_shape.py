"""The architecture as the README states it, checked on the source: imports one way, a module
of nas/ under 400 lines, no function over 50 (the CLI's argparse tables excepted), and
Optuna's private API only in nas/optuna_internals.py."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("searchspace", "evaluators", "nas")
ALLOWED = {"searchspace": set(), "evaluators": {"searchspace"},
           "nas": {"searchspace", "evaluators"}}


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_go_one_way(package: str) -> None:
    for path in _modules(package):
        wrong = (_imports(path) & set(PACKAGES)) - ALLOWED[package] - {package}
        assert not wrong, f"{path.relative_to(ROOT)} imports {wrong}"


def test_nas_modules_and_functions_are_short() -> None:
    for path in _modules("nas"):
        source = path.read_text()
        assert source.count("\n") <= 400, f"{path.relative_to(ROOT)} is over 400 lines"
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            table = node.name == "register" and path.name.endswith("_cmd.py")  # argparse
            length = node.end_lineno - node.lineno + 1
            assert table or length <= 50, \
                f"{path.relative_to(ROOT)}:{node.lineno} {node.name} is {length} lines"


def test_optunas_private_api_is_in_one_module() -> None:
    private = re.compile(r"\._storage\b|\._study_id\b|\._trial_id\b|optuna\.\w+(\.\w+)*\._\w")
    for package in (*PACKAGES, "benchmarks"):
        for path in _modules(package):
            if path.name == "optuna_internals.py":
                continue
            for n, line in enumerate(path.read_text().splitlines(), 1):
                assert not private.search(line), f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
