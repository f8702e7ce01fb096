"""A latency table file: the machine it was measured on, each kernel's time, and the
in-context factors that turn a sum of kernel times into a network's time.

Every time in it is a ratio to the reference workload timed beside it (``Reference``),
times ``reference_ms``, the reference's quiet time on this machine, fixed when the table was
first measured (two processes that started it together: the last to save converts the
other's times into its own unit): so times taken minutes apart, in a slow spell or a quiet
one, add up.

JSON, written atomically (a crash never leaves half a table)::

    {"format": "nas-latency-table/2",
     "machine": {"device": "cpu", "device_name": "...", "torch": "2.13.0", "threads": 1,
                 "batch": 1, "host": "..."},
     "reference": "ref1-c32-s16", "reference_ms": 0.21,
     "kernels": {"<kernel key>": <ms>, ...},
     "factors": {"conv1x1": 1.1, ..., "fixed_ms": 0.0},
     "calibration": [{"name": ..., "key": ..., "measured_ms": ..., "sums": {...}}, ...]}
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from searchspace.latency_measure import Reference

__all__ = ["LatencyTable", "TableError", "StaleTable", "FORMAT", "MACHINE_FIELDS"]

FORMAT = "nas-latency-table/2"
_OLD_FORMATS = ("nas-latency-table/1",)
MACHINE_FIELDS = ("device", "device_name", "torch", "threads", "batch")  # compared; not host
_MAX_BYTES = 256 << 20


class TableError(ValueError):
    """A latency table that cannot be read, or that cannot answer what was asked."""


class StaleTable(TableError):
    """A table of an older format or another reference workload: to be measured again."""


@dataclass
class LatencyTable:
    """Kernel times (ms) measured on ``machine``, and the factors fitted on whole networks."""

    machine: dict[str, Any]
    kernels: dict[str, float] = field(default_factory=dict)
    factors: dict[str, float] = field(default_factory=dict)
    calibration: list[dict[str, Any]] = field(default_factory=list)
    path: Path | None = None
    reference_ms: float | None = None  # None until the first kernels are measured

    def same_machine(self, other: dict[str, Any]) -> bool:
        """Whether ``other`` (a ``latency_measure.machine()``) is the machine measured."""
        return all(self.machine.get(k) == other.get(k) for k in MACHINE_FIELDS)

    def describe(self) -> str:
        m = self.machine
        return (f"{m['device_name']}, torch {m['torch']}, {m['threads']} thread(s), "
                f"batch {m['batch']}")

    def rescaled(self, reference_ms: float | None) -> dict[str, float]:
        """The kernel times in units of another quiet time of the reference (two processes
        that started the same table each fixed their own)."""
        if not (reference_ms and self.reference_ms) or reference_ms == self.reference_ms:
            return self.kernels
        return {k: v * reference_ms / self.reference_ms for k, v in self.kernels.items()}

    def save(self, path: str | Path | None = None) -> Path:
        """Write the table (atomically) to ``path`` or where it was read from, keeping the
        kernels another process of the same machine added to that file meanwhile."""
        target = Path(path or self.path or "latency-table.json")
        try:
            self._write(target)
        except OSError as exc:
            raise TableError(f"{target}: cannot write the latency table "
                             f"({exc.strerror or exc})") from None
        self.path = target
        return target

    def _write(self, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            on_disk = LatencyTable.load(target) if target.exists() else None
        except TableError:
            on_disk = None
        if on_disk is not None and on_disk.same_machine(self.machine):
            if self.reference_ms is None:  # nothing measured here yet: take the file's unit
                self.reference_ms = on_disk.reference_ms
            self.kernels = {**on_disk.rescaled(self.reference_ms), **self.kernels}
        body = {"format": FORMAT, "machine": self.machine, "reference": Reference.NAME,
                "reference_ms": self.reference_ms, "kernels": self.kernels,
                "factors": self.factors, "calibration": self.calibration}
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # as open() would make it, not mkstemp's 0600
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(body, f, indent=0)
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    @classmethod
    def load(cls, path: str | Path) -> LatencyTable:
        """Read and check a table; TableError in one line for anything else."""
        p = Path(path)
        try:
            if p.stat().st_size > _MAX_BYTES:
                raise TableError(f"{path}: over {_MAX_BYTES >> 20} MB, not a latency table")
            body = json.loads(p.read_text())
        except FileNotFoundError:
            raise TableError(f"{path}: no such latency table") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise TableError(f"{path}: not a latency table ({_why(exc)})") from None
        if isinstance(body, dict) and body.get("format") in _OLD_FORMATS:
            raise StaleTable(f"{path}: made by an older nas, its times not paired with a "
                             "reference workload; measure it again with `nas latency-table "
                             f"-o {path}` on its machine")
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            raise TableError(f"{path}: not a latency table (no \"format\": \"{FORMAT}\"); "
                             "make one with `nas latency-table`")
        machine, kernels = _machine(body, path), _numbers(body, "kernels", path)
        return cls(machine, kernels, _numbers(body, "factors", path), _list(body, path),
                   path=p, reference_ms=_reference_ms(body, path, bool(kernels)))


def _why(exc: Exception) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)[:80]


def _machine(body: dict, path: str | Path) -> dict[str, Any]:
    m = body.get("machine")
    if not isinstance(m, dict) or any(k not in m for k in MACHINE_FIELDS):
        raise TableError(f"{path}: its \"machine\" must name {', '.join(MACHINE_FIELDS)}")
    for k in ("threads", "batch"):
        if not isinstance(m[k], int) or isinstance(m[k], bool) or m[k] < 1:
            raise TableError(f"{path}: machine.{k} must be a positive integer, not {m[k]!r}")
    m.setdefault("host", "")
    return m


def _numbers(body: dict, name: str, path: str | Path) -> dict[str, float]:
    d = body.get(name, {})
    if not isinstance(d, dict):
        raise TableError(f"{path}: \"{name}\" must be an object of numbers")
    for k, v in d.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (
                math.isfinite(v) and v >= 0):
            raise TableError(f"{path}: {name}[{k[:60]!r}] must be a finite number >= 0, "
                             f"not {v!r}")
    return {k: float(v) for k, v in d.items()}


def _reference_ms(body: dict, path: str | Path, has_kernels: bool) -> float | None:
    name, ms = body.get("reference"), body.get("reference_ms")
    if name != Reference.NAME:
        raise StaleTable(f"{path}: its times are in units of another reference workload "
                         f"({name or 'none named'}), not this nas's {Reference.NAME}; measure "
                         f"it again with `nas latency-table -o {path}` on its machine")
    if ms is None and not has_kernels:
        return None
    if isinstance(ms, bool) or not isinstance(ms, (int, float)) or not (
            math.isfinite(ms) and ms > 0):
        raise TableError(f"{path}: reference_ms must be a positive number, not {ms!r}")
    return float(ms)


def _list(body: dict, path: str | Path) -> list[dict[str, Any]]:
    cal = body.get("calibration", [])
    if not isinstance(cal, list) or not all(isinstance(c, dict) for c in cal):
        raise TableError(f"{path}: \"calibration\" must be a list of objects")
    return cal
