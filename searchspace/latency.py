"""A network's latency predicted from a table of its kernels' times, and the table's upkeep.

A kernel timed alone in a loop runs hot (its code, weights and input in cache); inside a
network it runs 1.0x to 1.7x slower, by how much depending on what it is (measured on this
project's 2-core machine). So the prediction is the kernel times summed by kind (1x1
convolutions, other convolutions, depthwise, normalisation, activations, pooling, the
rest), each sum times the table's factor for its kind, plus a fixed time per network:
factors fitted on whole networks measured end to end on the same machine (``calibrate``),
toward 1 where few networks say otherwise. Every time, a kernel's or a network's, is taken
beside a reference workload and kept in its units (``latency_measure``), so the machine's
slow spells mostly cancel.

Example:
    >>> table = LatencyTable(machine("cpu", threads=1, batch=1))
    >>> p = Predictor(table, measure_here=True)
    >>> p.predict(searchspace.zoo.get("resnet20")) > 0
    True
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from searchspace.builder import build
from searchspace.files import cache_dir
from searchspace.genotype import Genotype
from searchspace.latency_measure import (MachineError, Reference, check_device, machine,
                                         paired_times, settings, steady)
from searchspace.latency_table import FORMAT, LatencyTable, TableError
from searchspace.latency_units import Unit, units

__all__ = ["Predictor", "Timing", "KINDS", "kind", "LatencyTable", "TableError",
           "machine", "predictor_for", "default_table", "MachineError"]

KINDS = ("conv1x1", "conv", "dwconv", "norm", "act", "pool", "other")
_CONV = re.compile(r"^Conv2d\((\d+), (\d+), kernel_size=\((\d+), (\d+)\)")
_GROUPS = re.compile(r"groups=(\d+)")
_NORMS = ("BatchNorm2d(",)
_ACTS = ("ReLU(", "ReLU6(", "SiLU(", "Sigmoid(", "Hardswish(", "GELU(")
# pooling its own kind: a stride-1 3x3 max-pool costs as much as a convolution, and runs
# in a network at its isolated time, where convolutions run slower
_POOLS = ("MaxPool2d(", "AvgPool2d(", "AdaptiveAvgPool2d(")
_RIDGE = 0.01  # pull of each factor toward 1 (the fixed time toward 0), in relative-error units
Progress = Callable[[int], None]


class Timing(NamedTuple):
    """A network's measured time: as the table counts it, and the stopwatch's best."""

    ms: float
    stopwatch_ms: float


def kind(key: str) -> str:
    """The kind of a kernel key: what its in-context factor is fitted for."""
    m = _CONV.match(key)
    if m:
        groups = _GROUPS.search(key.split(") ", 1)[0])
        if groups and int(groups.group(1)) == int(m.group(1)) > 1:
            return "dwconv"
        return "conv1x1" if m.group(3) == m.group(4) == "1" else "conv"
    if key.startswith(_NORMS):
        return "norm"
    if key.startswith(_POOLS):
        return "pool"
    return "act" if key.startswith(_ACTS) else "other"


class Predictor:
    """Latencies (ms) from ``table``; with ``measure_here`` (the table is this machine's),
    kernels it lacks are measured now and saved, otherwise they are a TableError."""

    def __init__(self, table: LatencyTable, measure_here: bool = False,
                 device: str | None = None) -> None:
        self.table = table
        self.device = device or _device(table.machine)  # which GPU of several measures
        here = machine(self.device, table.machine["threads"], table.machine["batch"]
                       ) if measure_here else None
        if here is not None and not table.same_machine(here):
            raise TableError(f"{table.path or 'the table'} was measured on {table.describe()}; "
                             f"this machine is {LatencyTable(here).describe()}")
        self.measure_here = here is not None
        self._sums: dict[str, dict[str, float]] = {}
        self._reference: Reference | None = None

    def predict(self, g: Genotype) -> float:
        """Predicted milliseconds of one forward pass of ``g`` at the table's batch."""
        f = self.table.factors
        return f.get("fixed_ms", 0.0) + sum(f.get(k, 1.0) * v for k, v in self.sums(g).items())

    def sums(self, g: Genotype, progress: Progress | None = None) -> dict[str, float]:
        """The kernel times of ``g`` summed by kind (before the factors)."""
        key = g.key()
        if key not in self._sums:
            us = units(g, self.table.machine["batch"])
            self.fill(us, progress)
            out = dict.fromkeys(KINDS, 0.0)
            for u in us:
                out[kind(u.key)] += self.table.kernels[u.key]
            if len(self._sums) > 50_000:
                self._sums.clear()
            self._sums[key] = out
        return self._sums[key]

    def fill(self, us: Iterable[Unit], progress: Progress | None = None, passes: int = 5,
             seconds: float = 1.5) -> int:
        """Measure the kernels of ``us`` the table lacks: the median of their ratios to the
        reference over at least ``passes`` passes, for at least ``seconds`` (``steady``);
        saves the table when it has a file. Returns how many were measured."""
        todo = {u.key: u for u in us if u.key not in self.table.kernels}
        if not todo:
            return 0
        if not self.measure_here:
            first = next(iter(todo))
            raise TableError(f"{self.table.path or 'the latency table'} lacks {len(todo)} "
                             f"kernel(s) of this network, e.g. {first[:100]!r}; it was measured "
                             f"on {self.table.describe()}: measure them there with `nas "
                             "latency-table --genotype FILE -o TABLE`")
        with settings(self.device, self.table.machine["threads"]):
            calls = {k: u.replay(self.device) for k, u in todo.items()}
            ratios, _ = self._paired(calls, passes=passes, spread_s=seconds,
                                     progress=progress)
        self.table.kernels.update((k, self._in_ms(r)) for k, r in ratios.items())
        if self.table.path is not None:
            self.table.save()
        return len(todo)

    def measure(self, nets: list[Genotype], rounds: int = 5, progress: Progress | None = None
                ) -> list[Timing]:
        """Each network's end-to-end time on this machine, as the table counts time: the
        median ratio to the reference over at least ``rounds`` rounds and 2 s, times its
        quiet time; and the best raw time a stopwatch saw."""
        if not self.measure_here:
            raise TableError(f"{self.table.path or 'the table'} is another machine's "
                             f"({self.table.describe()}): networks are measured there")
        m = self.table.machine
        with settings(self.device, m["threads"]):
            calls = {}
            for i, g in enumerate(nets):
                x = torch.rand(m["batch"], g.in_channels, g.resolution, g.resolution,
                               device=self.device)
                calls[str(i)] = functools.partial(build(g).to(self.device).eval(), x)
            ratios, raw = self._paired(calls, passes=rounds, spread_s=2.0, progress=progress,
                                       loop_s=0.02, repeats=2)
        return [Timing(self._in_ms(ratios[k]), min(raw[k])) for k in calls]

    def _paired(self, calls: dict[str, Callable[[], object]], *, passes: int,
                spread_s: float, progress: Progress | None, loop_s: float = 0.002,
                repeats: int = 3) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
        """Each call's ratios to the reference and raw times (ms) over the passes."""
        if self._reference is None:
            self._reference = Reference(self.device)
        ratios: dict[str, list[float]] = {k: [] for k in calls}
        raw: dict[str, list[float]] = {k: [] for k in calls}

        def one_pass() -> None:
            for k, (ms, ratio) in paired_times(calls, self._reference, loop_s, repeats,
                                               progress=progress).items():
                ratios[k].append(ratio)
                raw[k].append(ms)

        steady(one_pass, passes, spread_s)
        return ratios, raw

    def _in_ms(self, ratios: list[float]) -> float:
        """The median of ``ratios`` in milliseconds; a new table takes the reference's best
        time so far as its unit, once."""
        if self.table.reference_ms is None:
            self.table.reference_ms = self._reference.quiet_ms
        return float(np.median(ratios)) * self.table.reference_ms

    def calibrate(self, nets: list[Genotype], rounds: int = 5,
                  progress: Progress | None = None) -> None:
        """Measure ``nets`` end to end, add them to the table's calibration and fit the
        factors on all of its networks."""
        self.fill([u for g in nets for u in units(g, self.table.machine["batch"])], progress)
        sums = [self.sums(g) for g in nets]
        measured = self.measure(nets, rounds, progress)
        for g, s, timing in zip(nets, sums, measured):
            self.table.calibration.append({"name": g.name, "key": g.key(),
                                           "measured_ms": timing.ms, "sums": s})
        self.table.factors = fit_factors(self.table.calibration)
        self._sums.clear()
        if self.table.path is not None:
            self.table.save()


_PREDICTORS: dict[str, Predictor] = {}


def default_table(device: str = "cpu", threads: int = 1, batch: int = 1) -> Path:
    """Where this machine's own table for ``device`` lives: ``$NAS_CACHE_DIR/latency`` (by
    default ``~/.cache/nas/latency``), one file per device model, torch, threads, batch,
    table format and reference workload."""
    m = machine(device, threads, batch)
    slug = re.sub(r"[^a-z0-9]+", "-", f"{m['device_name']}-torch{m['torch']}".lower()).strip("-")
    version = FORMAT.rsplit("/", 1)[1]  # a new format starts a new file: the old one stays
    name = f"{m['device']}-{slug}-t{threads}-b{batch}-v{version}-{Reference.NAME}.json"
    return cache_dir() / "latency" / name


def predictor_for(target: str, calibrate: Callable[[Predictor], None] | None = None
                  ) -> Predictor:
    """The predictor of a budget's ``@target``: "cpu" or "cuda[:N]" (this machine's table,
    measured as needed and calibrated first when new) or a table file (this machine's:
    filled as needed; another machine's: used as it is). One per target in a process."""
    device = target == "cpu" or target.startswith("cuda")
    key = check_device(target) if device else str(Path(target).resolve())
    if key not in _PREDICTORS:
        _PREDICTORS[key] = _open(key, device, calibrate)
    return _PREDICTORS[key]


def _open(target: str, device: bool, calibrate: Callable[[Predictor], None] | None
          ) -> Predictor:
    if device:
        path = default_table(target)
        table = (LatencyTable.load(path) if path.exists()
                 else LatencyTable(machine(target, 1, 1), path=path))
        p = Predictor(table, measure_here=True, device=target)
    else:
        table = LatencyTable.load(target)
        m = table.machine
        try:
            here = machine(m["device"], m["threads"], m["batch"])
        except MachineError:
            here = None
        p = Predictor(table, measure_here=here is not None and table.same_machine(here))
    if not table.factors:
        if not p.measure_here:
            raise TableError(f"{target}: the table is not calibrated (no end-to-end networks); "
                             "run `nas latency-table` on the machine it was measured on")
        (calibrate or _calibrate_quietly)(p)
    return p


def _calibrate_quietly(p: Predictor) -> None:
    from searchspace.latency_networks import calibration_networks

    p.calibrate(calibration_networks())


def _device(m: dict) -> str:
    return "cpu" if m["device"] == "cpu" else "cuda:0"


def fit_factors(calibration: list[dict]) -> dict[str, float]:
    """Per-kind factors and a fixed time minimising the relative error over the calibration
    networks, each factor pulled toward 1 (and the fixed time toward 0) by a ridge term."""
    rows = [[c["sums"].get(k, 0.0) for k in KINDS] + [1.0] for c in calibration]
    a = np.array(rows, dtype=float) / np.array([c["measured_ms"] for c in calibration])[:, None]
    b = np.ones(len(rows))
    prior = np.array([1.0] * len(KINDS) + [0.0])
    lam = np.sqrt(_RIDGE) * np.eye(len(prior))
    x, *_ = np.linalg.lstsq(np.vstack([a, lam]), np.concatenate([b, lam @ prior]), rcond=None)
    x = np.clip(x, [0.25] * len(KINDS) + [0.0], None)
    factors = {k: round(float(v), 4) for k, v in zip(KINDS, x)}
    return {**factors, "fixed_ms": round(float(x[-1]), 4)}
