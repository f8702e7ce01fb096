"""Timing on the machine at hand: one kernel, a whole network, and the machine's fingerprint.

A shared or virtual machine runs slow for seconds at a time (measured here: the same network
1.0x to 1.7x its best time within a minute), so every figure is the minimum over repeats,
never an average: the minimum is what the machine does undisturbed, and it repeats within a
few percent where a mean or median does not. Slow spells last seconds (the same
network's best time over 10 s came within 3% of the next 10 s', where the median of a
spell wandered by 10%), so ``steady`` repeats a job's passes for a few seconds.
"""

from __future__ import annotations

import contextlib
import os
import platform
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch

__all__ = ["machine", "settings", "time_call", "check_device", "MachineError", "steady"]



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
    ``seconds`` have passed (at most ``limit`` times), so that each figure's minimum, which
    the caller keeps, is taken over a spell of the machine's good and bad seconds. Returns
    how many passes ran."""
    start, n = time.perf_counter(), 0
    while n < limit and (n < passes or time.perf_counter() - start < seconds):
        run_pass()
        n += 1
    return n
