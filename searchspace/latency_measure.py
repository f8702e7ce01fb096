"""Timing on the machine at hand: one kernel, a whole network, each paired with a reference
workload, and the machine's fingerprint.

A shared or virtual machine runs slow in spells, from seconds to many minutes (measured on
this project's 2-core VM: the same network 1.0x to 2.5x its best time within 90 s, with no
CPU time stolen: the slowdown is inside the core, from what the host's other tenants run
beside it). A time taken in a slow spell and one taken in a quiet one do not add up to a
prediction. So every timing is paired with a fixed reference workload timed beside it
(``Reference``) and kept as the ratio of the two, since a slow spell slows both; a figure is
the median of its ratios over several passes, times the reference's quiet time. A spell
slows some kernels more than the reference, so this cancels much of the noise, not all of
it: on that VM the same networks measured twice, 9 minutes apart, agreed within +-10% for
64% of them, where their best raw times agreed for 28% (results/latency/accuracy.md).
"""

from __future__ import annotations

import contextlib
import os
import platform
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch

__all__ = ["machine", "settings", "time_call", "check_device", "MachineError", "steady",
           "Reference", "paired_times"]


class MachineError(ValueError):
    """A device or thread count this machine cannot measure on."""


def check_device(device: str) -> str:
    """``device`` as torch names it ("cpu", "cuda:0"); MachineError when absent here."""
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise MachineError(f"unknown device {device!r}: use cpu or cuda[:N]") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise MachineError(f"device {device!r}: this machine has no CUDA GPU")
        index = dev.index or 0
        if index >= torch.cuda.device_count():
            raise MachineError(f"device {device!r}: this machine has "
                               f"{torch.cuda.device_count()} GPU(s)")
        return f"cuda:{index}"
    if dev.type != "cpu":
        raise MachineError(f"device {device!r}: latency is measured on cpu or cuda[:N]")
    return "cpu"


def machine(device: str, threads: int, batch: int) -> dict[str, Any]:
    """What a latency depends on: device model, torch version, threads and batch (the host
    name is kept for the reader, never compared)."""
    device = check_device(device)
    name = torch.cuda.get_device_name(device) if device != "cpu" else _cpu_name()
    return {"device": device.split(":")[0], "device_name": name, "torch": torch.__version__,
            "threads": threads, "batch": batch, "host": platform.node()}


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()} ({_cores()} cores)"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} ({_cores()} cores)"


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


@contextlib.contextmanager
def settings(device: str, threads: int) -> Iterator[None]:
    """Inference as deployed: no autograd, ``threads`` intra-op threads, denormals flushed
    (a trained network has none; fresh random weights in a deep stack can make them)."""
    if threads < 1:
        raise MachineError(f"threads must be at least 1, got {threads}")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    flushed = torch.set_flush_denormal(True)
    try:
        with torch.inference_mode():
            yield
    finally:
        torch.set_num_threads(before)
        if flushed:
            torch.set_flush_denormal(False)


def time_call(fn: Callable[[], Any], device: str, seconds: float = 0.002, repeats: int = 3
              ) -> float:
    """The best time of one call of ``fn``, in milliseconds: ``repeats`` loops of about
    ``seconds`` each, after a warm-up."""
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    fn()
    sync()
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < seconds / 4:
        fn()
        n += 1
    sync()
    calls = max(1, int(seconds / ((time.perf_counter() - start) / n)))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        sync()
        best = min(best, (time.perf_counter() - start) / calls)
    return best * 1e3


def steady(run_pass: Callable[[], None], passes: int = 3, seconds: float = 1.5,
           limit: int = 100) -> int:
    """Call ``run_pass`` (one timing pass of a job) at least ``passes`` times and until
    ``seconds`` have passed (at most ``limit`` times), so that the median the caller keeps
    is taken over more than one moment of the machine. Returns how many passes ran."""
    start, n = time.perf_counter(), 0
    while n < limit and (n < passes or time.perf_counter() - start < seconds):
        run_pass()
        n += 1
    return n


class Reference:
    """A fixed workload timed beside every measurement: the kernels networks spend most of
    their time in (3x3, depthwise and 1x1 convolutions, normalisation, activation, an
    addition) at a small size, about 0.2 ms on one CPU core (on a GPU it is launch-bound:
    untested there). ``NAME`` changes whenever the workload does, since a table's times are
    in its units."""

    NAME = "ref1-c32-s16"

    def __init__(self, device: str) -> None:
        self.device = device
        gen = torch.Generator().manual_seed(0)
        with torch.device("cpu"):
            block = torch.nn.ModuleList([
                torch.nn.Conv2d(32, 32, 3, padding=1, bias=False), torch.nn.BatchNorm2d(32),
                torch.nn.ReLU(), torch.nn.Conv2d(32, 32, 3, padding=1, groups=32, bias=False),
                torch.nn.Conv2d(32, 32, 1, bias=False)])
            for t in block.parameters():
                t.data.uniform_(0.5, 1.0, generator=gen)
            x = torch.rand(1, 32, 16, 16, generator=gen) + 0.5
        self._block = block.to(device).eval()
        self._x = x.to(device)
        self.quiet_ms = float("inf")  # its best time yet: the unit of a new table

    def _run(self) -> torch.Tensor:
        conv, norm, act, dw, pw = self._block
        y = act(norm(conv(self._x)))
        return pw(dw(y)) + y

    def sample_ms(self) -> float:
        """The reference's time now (ms)."""
        ms = time_call(self._run, self.device)
        self.quiet_ms = min(self.quiet_ms, ms)
        return ms


def paired_times(calls: dict[str, Callable[[], Any]], reference: Reference,
                 seconds: float = 0.002, repeats: int = 3, every: float = 0.05,
                 progress: Callable[[int], None] | None = None
                 ) -> dict[str, tuple[float, float]]:
    """One pass over ``calls``: each one's time (ms, ``time_call``) and its ratio to the
    reference's, the mean of the reference timed before and after it, at most ``every``
    seconds apart (so the two see the state the call saw)."""
    out: dict[str, tuple[float, float]] = {}
    pending: list[tuple[str, float]] = []
    before, since = reference.sample_ms(), time.perf_counter()

    def close() -> None:
        nonlocal before, since
        after = reference.sample_ms()
        ref = (before + after) / 2
        out.update((k, (ms, ms / ref)) for k, ms in pending)
        pending.clear()
        before, since = after, time.perf_counter()

    for key, fn in calls.items():
        pending.append((key, time_call(fn, reference.device, seconds, repeats)))
        if progress:
            progress(1)
        if time.perf_counter() - since >= every:
            close()
    if pending:
        close()
    return out
