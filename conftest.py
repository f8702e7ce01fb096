"""The namespace every docstring example runs in (``--doctest-modules`` over the packages)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent.parent / "shared" / "data"  # the examples' data

# nas/nni.py needs the optional nni extra; without it there is nothing of it to run
collect_ignore = [] if importlib.util.find_spec("nni") else ["nas/nni.py"]


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace) -> None:
    import optuna
    import torch

    import evaluators
    import nas
    import searchspace

    from evaluators.recipe import load_profile
    from searchspace import Limits, nbmacro, zoo

    doctest_namespace.update(optuna=optuna, torch=torch, nas=nas, searchspace=searchspace,
                             evaluators=evaluators, zoo=zoo, Limits=Limits, nbmacro=nbmacro,
                             load_profile=load_profile, NBMACRO=DATA / "nbmacro",
                             NB201=DATA / "nb201", CIFAR10=DATA / "cifar10-jpeg.tar.gz")


# docstring examples that read the shared data: skipped where it is absent, as tests are
_NEEDS = {"evaluators.nbmacro_table.NBMacroTable": "nbmacro/nas-bench-macro_cifar10.json"}


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        need = _NEEDS.get(item.name)
        if need and not (DATA / need).exists():
            item.add_marker(pytest.mark.skip(reason=f"{DATA / need} is not here"))
