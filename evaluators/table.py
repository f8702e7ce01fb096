"""Tabular evaluators: a published benchmark's accuracy looked up instead of trained.

NAS-Bench-201 trained each of its 15,625 cells for 200 epochs; ``NB201Table`` scores a cell
of the ``nb201`` space by its row of that table (the ``cifar10-valid`` validation accuracy),
in microseconds, so a whole search runs in seconds and strategies are compared the way the
NAS-Bench papers, NASLib and NNI's benchmarks compare them. The table knows only the
benchmark's own networks: a scaled network or a zoo net is not in it.
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import searchspace
from evaluators.data import DataError
from evaluators.base import Evaluation, Evaluator, Status
from searchspace import nb201

__all__ = ["NB201Table", "Row", "ENV", "CSV_NAME", "load_nb201", "table_path"]

ENV = "NAS_NB201"  # where the table is when --data does not say
CSV_NAME = "nb201_cifar10_valid.csv"
_COLUMNS = ("index", "arch", *nb201.DECISIONS, "valid_acc_200ep", "c10valid_test_acc_200ep",
            "flops_M", "params_M")


@dataclass(frozen=True)
class Row:
    """One cell of the table (accuracies in percent, as published)."""

    index: int  # the benchmark's own index, 0..15624
    arch: str  # the benchmark's string
    val: float  # cifar10-valid: validation accuracy after 200 epochs
    test: float  # the same network on the 10,000 test images
    flops_m: float  # multiply-adds (M) as the benchmark counts them (dead edges included)
    params_m: float


def table_path(data: str | Path | None, env: str, file: str, evaluator: str,
               benchmark: str) -> Path:
    """A published table's file: ``data`` (the file or its folder) or ``$env``; DataError in
    one line that says what to pass when it is absent."""
    given = data or os.environ.get(env)
    if not given:
        raise DataError(f"{evaluator} needs {benchmark}'s table: pass --data "
                        f"PATH/{file} (or its folder), or set ${env}")
    path = Path(given)
    if path.is_dir():
        path = path / file
    if not path.is_file():
        raise DataError(f"{path}: no {benchmark} table there (expected {file}, or its "
                        f"folder, via --data or ${env})")
    return path


def _path(data: str | Path | None) -> Path:
    return table_path(data, ENV, CSV_NAME, "nb201-table", "NAS-Bench-201")


def load_nb201(data: str | Path | None = None) -> dict[tuple[str, ...], Row]:
    """The table, keyed by the six edge ops (e0..e5); DataError in one line if unreadable."""
    path = _path(data)
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in _COLUMNS if c not in (reader.fieldnames or ())]
            if missing:
                raise DataError(f"{path}: not NAS-Bench-201's table (no column "
                                f"{', '.join(missing)})")
            table = {tuple(r[d] for d in nb201.DECISIONS):
                     Row(int(r["index"]), r["arch"], float(r["valid_acc_200ep"]),
                         float(r["c10valid_test_acc_200ep"]), float(r["flops_M"]),
                         float(r["params_M"]))
                     for r in reader}
    except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read the NAS-Bench-201 table ({exc})") from None
    if len(table) != 5 ** len(nb201.DECISIONS):
        raise DataError(f"{path}: {len(table):,} cells, NAS-Bench-201 has "
                        f"{5 ** len(nb201.DECISIONS):,}")
    return table


class NB201Table(Evaluator):
    """Scores ``nb201`` cells by NAS-Bench-201's 200-epoch validation accuracy.

    Example:
        >>> ev = NB201Table("shared/data/nb201")
        >>> ev.row({"e0": "nor_conv_3x3", ...}).val  # doctest: +SKIP
        91.5533
    """

    name = "nb201-table"
    template = "nb201"  # the space whose networks the table holds
    noisy = False  # one number a network, whatever the seed: nothing to gain by rescoring

    def __init__(self, data: str | Path | None = None,
                 limits: searchspace.Limits | None = None) -> None:
        self.data = data
        self.limits = limits or searchspace.Limits()
        self._table: dict[tuple[str, ...], Row] | None = None

    def load(self) -> None:
        """Read the table once (about 0.1 s); DataError names what to pass when it is absent."""
        if self._table is None:
            self._table = load_nb201(self.data)

    def row(self, assignment: Mapping[str, Any]) -> Row | None:
        """The table's row for an ``nb201`` assignment, or None when it is not one."""
        self.load()
        assert self._table is not None
        return self._table.get(tuple(assignment.get(d) for d in nb201.DECISIONS))

    def found(self, assignment: Mapping[str, Any], limits: searchspace.Limits) -> dict:
        """What the run folder says of a found cell: its index, string and accuracies."""
        row = self.row(assignment)
        assert row is not None
        return {"index": row.index, "arch": row.arch, "val": row.val, "test": row.test}

    @staticmethod
    def found_text(f: dict, budget: str) -> str:
        """One paragraph of the report from ``found``'s dict."""
        return (f"Found: NAS-Bench-201 cell {f['index']}, `{f['arch']}`: {f['val']:.2f}% "
                f"validation, {f['test']:.2f}% test accuracy after the benchmark's 200 "
                "epochs (the search saw only the validation figure). Zoo baselines are not "
                "compared: the table has no entry for them.")

    def evaluate(self, g: searchspace.Genotype, seed: int = 0,
                 assignment: Mapping[str, Any] | None = None) -> Evaluation:
        """Look ``g`` up by its decisions; the seed is unused (the table is one number)."""
        self.load()
        start = time.perf_counter()
        c = self.limits.cost(g)
        rejected = self.budget_check(c)
        if rejected is not None:
            return rejected
        row = self.row(assignment or {})
        if (g.resolution, g.num_classes, g.in_channels) != (32, 10, 3):
            row = None  # the benchmark trained CIFAR-10 at 32x32 only
        if row is None:
            return Evaluation(Status.FAILED, c.madds, c.params, device="table",
                              reason="not a cell of NAS-Bench-201 (the table scores only the "
                                     "nb201 space)")
        return Evaluation(Status.OK, c.madds, c.params, row.val / 100, "val",
                          time.perf_counter() - start, 0.0, 200.0, "table", worth=row.val / 100)
