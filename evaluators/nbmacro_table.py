"""NAS-Bench-Macro as an evaluator: one of the three published trainings, chosen by the seed.

NAS-Bench-Macro (Su et al., CVPR 2021) trained each network of its MobileNetV2-block space three
times (50 epochs, CIFAR-10 test accuracy). A real search gets one training a candidate, whose
seed noise is as large as the gaps near the top, so ``nbmacro-table`` rewards a trial with
ONE of the three, picked by its training seed (``seed % 3``: consecutive seeds give distinct
trainings), and reports the mean of the three beside it as what the network is worth
(``Evaluation.worth``). ``nbmacro-table-mean`` rewards the noise-free mean, for diagnosis.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import searchspace
from evaluators.data import DataError
from evaluators.base import Evaluation, Evaluator, Status
from evaluators.table import table_path
from searchspace import nbmacro

__all__ = ["NBMacroTable", "NBMacroMean", "MacroRow", "ENV", "JSON_NAME", "load_nbmacro"]

ENV = "NAS_NBMACRO"  # where the table is when --data does not say
JSON_NAME = "nas-bench-macro_cifar10.json"
TRAININGS = 3  # per network in the table
CLASSIFIER_BIAS = 10  # multiply-adds our counter adds to the table's: the linear layer's bias


@dataclass(frozen=True)
class MacroRow:
    """One string of the table (accuracies in percent, as published)."""

    arch: str  # the 8-digit string
    accs: tuple[float, ...]  # the three trainings' test accuracies
    mean: float
    params: int
    flops: int  # multiply-adds as the benchmark counts them (the linear bias left out)


def _path(data: str | Path | None) -> Path:
    return table_path(data, ENV, JSON_NAME, "nbmacro-table", "NAS-Bench-Macro")


def load_nbmacro(data: str | Path | None = None) -> dict[str, MacroRow]:
    """The table keyed by the 8-digit string; DataError in one line if unreadable."""
    path = _path(data)
    try:
        raw = json.loads(path.read_text())
        table = {arch: MacroRow(arch, tuple(float(a) for a in r["test_acc"]),
                                float(r["mean_acc"]), int(r["params"]), int(r["flops"]))
                 for arch, r in raw.items()}
    except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise DataError(f"{path}: cannot read the NAS-Bench-Macro table ({exc})") from None
    expected = 3 ** len(nbmacro.DECISIONS)
    if len(table) != expected or any(len(r.accs) != TRAININGS for r in table.values()):
        raise DataError(f"{path}: {len(table):,} networks of three trainings expected "
                        f"{expected:,}: not NAS-Bench-Macro's table")
    return table


class NBMacroTable(Evaluator):
    """Scores ``nbmacro`` networks by one published training, picked by the trial's seed.

    Example:
        >>> ev = NBMacroTable(NBMACRO)  # the table's JSON, or its folder
        >>> a = nbmacro.parse_arch("22212220")
        >>> e = ev.evaluate(searchspace.load_space("nbmacro").genotype(a), seed=7, assignment=a)
        >>> round(e.accuracy, 4), round(e.worth, 4)  # training 7 % 3 = 1; the mean of three
        (0.9333, 0.9313)
    """

    name = "nbmacro-table"
    template = "nbmacro"  # the space whose networks the table holds
    noisy = True  # one training's score, as a real search gets

    def __init__(self, data: str | Path | None = None,
                 limits: searchspace.Limits | None = None) -> None:
        self.data = data
        self.limits = limits or searchspace.Limits()
        self._table: dict[str, MacroRow] | None = None

    def load(self) -> None:
        """Read the table once (about 0.05 s); DataError names what to pass when absent."""
        if self._table is None:
            self._table = load_nbmacro(self.data)

    @property
    def table(self) -> dict[str, MacroRow]:
        self.load()
        assert self._table is not None
        return self._table

    def row(self, assignment: Mapping[str, Any]) -> MacroRow | None:
        """The table's row for an ``nbmacro`` assignment, or None when it is not one."""
        try:
            return self.table.get(nbmacro.arch_string(assignment))
        except (KeyError, ValueError):
            return None

    def reward(self, row: MacroRow, seed: int) -> float:
        """The accuracy (%) a trial with this training seed gets."""
        return row.accs[seed % TRAININGS]

    def best_within(self, limits: searchspace.Limits) -> MacroRow | None:
        """The network of highest mean accuracy whose cost fits ``limits`` (the table's own
        counts: ours are exactly these, plus the classifier's bias; a latency limit is left
        out: predicting 6,561 networks' latency would measure them all)."""
        limits = dataclasses.replace(limits, latency_ms=None)
        fits = [r for r in self.table.values() if limits.fits(
            searchspace.Cost(r.flops + CLASSIFIER_BIAS, r.params, ()))]
        return max(fits, key=lambda r: (r.mean, nbmacro.canonical(r.arch) == r.arch),
                   default=None)

    def found(self, assignment: Mapping[str, Any], limits: searchspace.Limits) -> dict:
        """What the run folder says of a found network: its trainings, its mean, and the
        best network inside ``limits`` with the gap to it (points)."""
        row, best = self.row(assignment), self.best_within(limits)
        assert row is not None
        out = {"arch": nbmacro.canonical(row.arch), "accs": list(row.accs), "mean": row.mean}
        if best is not None:
            out |= {"best_arch": nbmacro.canonical(best.arch), "best_mean": best.mean,
                    "regret": round(best.mean - row.mean, 4)}
        return out

    @staticmethod
    def found_text(f: dict, budget: str) -> str:
        """One paragraph of the report from ``found``'s dict."""
        text = (f"Found: NAS-Bench-Macro network `{f['arch']}`: {f['mean']:.2f}% mean test "
                f"accuracy over the benchmark's three 50-epoch trainings ("
                + ", ".join(f"{a:.2f}" for a in f["accs"]) + ").")
        if "best_arch" in f:
            text += (f" The best network inside {budget or 'the space'} is `{f['best_arch']}` "
                     f"at {f['best_mean']:.2f}%: the found one is {f['regret']:.2f} points "
                     f"below it" + (" (it is that network)." if f["regret"] <= 0 else "."))
        return text + " Zoo baselines are not compared: the table has no entry for them."

    def evaluate(self, g: searchspace.Genotype, seed: int = 0,
                 assignment: Mapping[str, Any] | None = None) -> Evaluation:
        """Look ``g`` up by its decisions: one training's accuracy, and the mean as worth."""
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
                              reason="not a network of NAS-Bench-Macro (the table scores only "
                                     "the nbmacro space)")
        return Evaluation(Status.OK, c.madds, c.params, self.reward(row, seed) / 100, "test",
                          time.perf_counter() - start, 0.0, 50.0, "table",
                          worth=row.mean / 100)


class NBMacroMean(NBMacroTable):
    """``nbmacro-table`` rewarding the noise-free mean of the three trainings (diagnosis)."""

    name = "nbmacro-table-mean"
    noisy = False

    def reward(self, row: MacroRow, seed: int) -> float:
        return row.mean
