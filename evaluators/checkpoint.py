"""Training that resumes: a run's whole state in one file, written atomically, refused when it
belongs to another network, recipe, data or seed.

Signals are deferred while a resumable run trains: SIGINT or SIGTERM arriving mid-step (in
the middle of an optimizer update) would leave weights that belong to no step, so the loop
finishes the step, saves, and only then stops with ``Paused``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from evaluators.recipe import HOW_IT_RUNS, Recipe

__all__ = ["CheckpointError", "Paused", "Position", "Keeper", "identity", "save_state",
           "load_state", "deferred_signals"]

FORMAT = 1  # bump when the saved fields change meaning


class CheckpointError(ValueError):
    """A state file that cannot be used: damaged, or from another training. One line."""


class Paused(KeyboardInterrupt):
    """A resumable training stopped by a signal after saving its state. A KeyboardInterrupt,
    like the CLI's own, so no ``except Exception`` swallows it."""

    def __init__(self, signum: int, path: Path, step: int, total: int) -> None:
        self.signum, self.path, self.step, self.total = signum, path, step, total
        super().__init__(f"stopped at step {step:,} of {total:,}; its state is in {path}: "
                         "the same command resumes it")


def identity(model: nn.Module, recipe: Recipe, arrays: tuple[np.ndarray, ...],
             resolution: int, seed: int, device: torch.device) -> dict[str, str]:
    """What a training's numbers depend on, each part a short hash (so a refusal can say which
    part differs): the network's structure, the recipe, the data, the input side, the seed,
    and the kind of device (cpu or cuda) it trains on (a generator's state does not cross
    devices)."""
    shapes = [(k, tuple(v.shape), str(v.dtype)) for k, v in model.state_dict().items()]
    fields = {f.name: getattr(recipe, f.name) for f in dataclasses.fields(recipe)
              if f.name not in HOW_IT_RUNS}
    return {"network": _digest(repr(model), shapes), "recipe": _digest(sorted(fields.items())),
            "data": _data_digest(arrays), "resolution": str(resolution), "seed": str(seed),
            "device": device.type}


def _digest(*parts: Any) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def _data_digest(arrays: tuple[np.ndarray, ...]) -> str:
    """Shapes, every label and a strided sample of the pixels: milliseconds, not the second a
    full hash of 150 MB takes, and enough to tell one dataset or split from another."""
    h = hashlib.blake2b(digest_size=8)
    for a in arrays:
        h.update(repr(a.shape).encode())
        flat = np.ascontiguousarray(a).reshape(-1)
        h.update(np.ascontiguousarray(flat[::max(1, flat.size // 1_000_000)]).tobytes())
    return h.hexdigest()


def save_state(path: Path, ident: dict[str, str], state: dict[str, Any]) -> None:
    """Write ``state`` under ``ident`` to ``path``: to a temporary file first, then renamed, so
    a kill while writing leaves the previous state, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save({"format": FORMAT, "identity": ident, **_to_cpu(state)}, tmp)
    os.replace(tmp, path)


def _to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(v) for v in value)
    return value


def load_state(path: Path, ident: dict[str, str]) -> dict[str, Any] | None:
    """The state saved at ``path`` (None when there is none); CheckpointError when it is
    damaged or belongs to another training."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a damaged file
        raise CheckpointError(f"{path} is not a training state ({type(exc).__name__}); "
                              "delete it to start the training again") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a training state of this version; delete it to "
                              "start the training again")
    theirs = state.get("identity") or {}
    differ = [k for k in ident if theirs.get(k) != ident[k]]
    if differ:
        raise CheckpointError(f"{path} holds the state of another training (its "
                              f"{', '.join(differ)} differ{'s' if len(differ) == 1 else ''}); "
                              "delete it or write this training elsewhere")
    return state


@contextlib.contextmanager
def deferred_signals() -> Iterator[list[int]]:
    """Inside the block, SIGINT and SIGTERM are recorded in the yielded list instead of acting;
    the caller stops at its next safe point (and clears the list). A signal still pending when
    the block ends (it came after the last safe point) is delivered again then, to the
    handlers of before, so it is never lost. A no-op outside the main thread, where signals
    cannot be handled."""
    pending: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield pending
        return

    def record(signum: int, frame) -> None:
        pending.append(signum)

    before = {s: signal.signal(s, record) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield pending
    finally:
        for signum, previous in before.items():
            signal.signal(signum, previous)
        if pending:
            signal.raise_signal(pending[0])


@dataclass
class Position:
    """Where a run is: with the model, optimizer, average and generator, all a resume needs."""

    step: int = 0  # steps done
    epoch: int = 0  # the epoch in progress (0-based)
    index: int = 0  # steps done in it
    seen: int = 0  # training images of finished epochs
    elapsed: float = 0.0  # training seconds before this process took over
    history: list = field(default_factory=list)  # an EpochLog for each finished epoch
    order: torch.Tensor | None = None  # the epoch's data order; None before it is drawn
    loss_sum: torch.Tensor | None = None  # the epoch's running sums
    correct: torch.Tensor | None = None
    count: int = 0


class Keeper:
    """Saves and restores a run's state (``evaluators.train.train``'s ``state``); ``ema`` is
    its WeightAverage or None."""

    def __init__(self, path: Path, ident: dict[str, str], saved: dict | None) -> None:
        self.path, self.ident, self.saved = path, ident, saved

    def restore(self, model: nn.Module, opt: torch.optim.SGD, lr: torch.Tensor | None,
                ema: Any, gen: torch.Generator, pos: Position, log_type: type) -> None:
        """Put the saved state into the run's objects (nothing when there is none)."""
        if self.saved is None:
            return
        s, device = self.saved, next(model.parameters()).device
        model.load_state_dict(s["model"])
        opt.load_state_dict(s["optimizer"])
        if lr is not None:  # the schedule writes this tensor, which a CUDA graph reads
            for group in opt.param_groups:
                group["lr"] = lr
        if ema is not None:
            ema.module.load_state_dict(s["average"])
            ema.started = s["average_started"]
        gen.set_state(s["generator"])
        torch.set_rng_state(s["torch_rng"])  # dropout draws from the default generators
        if s["cuda_rng"] is not None:
            torch.cuda.set_rng_state(s["cuda_rng"], device)
        p = s["position"]
        for name in ("step", "epoch", "index", "seen", "elapsed", "count"):
            setattr(pos, name, p[name])
        pos.history = [log_type(**h) for h in p["history"]]
        pos.order, pos.loss_sum, pos.correct = (None if p[k] is None else p[k].to(device)
                                                for k in ("order", "loss_sum", "correct"))
        self.saved = None  # free the host copy

    def save(self, model: nn.Module, opt: torch.optim.SGD, ema: Any, gen: torch.Generator,
             pos: Position, elapsed: float) -> None:
        """Save the run's state as it is between two steps."""
        position = {k: getattr(pos, k) for k in ("step", "epoch", "index", "seen", "count",
                                                 "order", "loss_sum", "correct")}
        position.update(elapsed=elapsed, history=[asdict(h) for h in pos.history])
        save_state(self.path, self.ident, {
            "model": model.state_dict(), "optimizer": opt.state_dict(),
            "average": ema.module.state_dict() if ema else None,
            "average_started": ema.started if ema else False,
            "generator": gen.get_state(), "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(gen.device) if gen.device.type == "cuda"
            else None, "position": position})
