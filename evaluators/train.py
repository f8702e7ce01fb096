"""One training loop for every recipe: data on the device, batched augmentation, Nesterov SGD.

What pays in the fastest CIFAR-10 trainers (airbench, hlb-CIFAR10, Page's ResNet-9) and
still fits *arbitrary* genotypes: the whole dataset on the device as uint8, augmentation
on batches, label smoothing, a linear warm-up then decay to zero, no weight decay on BN and
biases, an exponential moving average of the weights, flip test-time augmentation,
channels_last everywhere; on CUDA bf16 autocast, fused SGD and each step replayed from a CUDA
graph (small networks are bound by kernel launches: 2.5x on resnet20, results/gpu).
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from evaluators.augment import random_crop_flip, to_input
from evaluators.checkpoint import Keeper, Paused, Position, deferred_signals, identity, load_state
from evaluators.data import Split
from evaluators.recipe import Recipe
from evaluators.scoring import evaluate

__all__ = ["train", "evaluate", "TrainResult", "EpochLog", "Diverged", "TooSlow", "pick_device",
           "WeightAverage"]

CHECK_EVERY = 8  # steps between checks of the time guard
FINITE_EVERY = 16  # steps between checks that the loss is finite (a host sync on a GPU)
WARM_STEPS = 3  # eager steps before a CUDA graph is captured


class Diverged(RuntimeError):
    """The loss became NaN or infinite: the candidate ends with this reason."""


class TooSlow(RuntimeError):
    """The run would not finish its schedule within the recipe's time limit."""

    def __init__(self, images_per_s: float, projected: float, limit: float) -> None:
        super().__init__(f"too slow: {images_per_s:,.0f} images/s, {projected:,.0f} s to "
                         f"finish the schedule, over the time limit of {limit:g} s")
        self.images_per_s = images_per_s


@dataclass(frozen=True)
class EpochLog:
    """Progress after one epoch."""

    epoch: int
    epochs: int
    loss: float  # mean training loss of the epoch
    train_accuracy: float  # on the augmented training batches
    images_per_s: float
    elapsed: float  # seconds since training began
    eta: float  # seconds left, estimated


@dataclass
class TrainResult:
    """What a training run measured."""

    accuracy: float  # on the split's evaluation images (val or test)
    loss: float  # last epoch's training loss
    seconds: float  # training time, evaluation excluded
    images_per_s: float  # training throughput
    epochs: float
    device: str
    history: list[EpochLog] = field(default_factory=list)
    model: nn.Module | None = None  # the weights that were scored (the average, with ema)


def pick_device(name: str | None = None) -> torch.device:
    """``name`` if given, else CUDA when present, else CPU."""
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for p in model.parameters():
        (decay if p.ndim > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def _optimizer(groups: list[dict], recipe: Recipe, device: torch.device
               ) -> tuple[torch.optim.SGD, torch.Tensor | None]:
    """Nesterov SGD; on CUDA the fused kernel (one launch for every parameter) with the learning
    rate in a device tensor, so a CUDA graph reads each step's rate. Returns (sgd, that tensor)."""
    kwargs = dict(momentum=recipe.momentum, nesterov=True)
    if device.type == "cuda":
        lr = torch.tensor(recipe.lr, device=device)
        try:
            return torch.optim.SGD(groups, lr=lr, fused=True, **kwargs), lr
        except (TypeError, RuntimeError, ValueError):  # a torch without fused SGD
            pass
    return torch.optim.SGD(groups, lr=recipe.lr, **kwargs), None


class WeightAverage:
    """An exponential moving average of a model's weights and BN statistics, updated on the
    device with two multi-tensor kernels a step. (``AveragedModel`` copies its step counter
    from the host twice a step and loops over every buffer in Python.)"""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.module = copy.deepcopy(model).requires_grad_(False)
        self.weight = 1.0 - decay
        avg, src = self.module.state_dict(), model.state_dict()
        self._float = [(avg[k], v) for k, v in src.items() if v.is_floating_point()]
        self._other = [(avg[k], v) for k, v in src.items() if not v.is_floating_point()]
        self.started = False

    @torch.no_grad()
    def update(self) -> None:
        """Fold the model's current state in (the first call copies it)."""
        if not self.started:  # like AveragedModel: the average starts at the first update
            torch._foreach_copy_(*zip(*self._float))
            self.started = True
        else:
            torch._foreach_lerp_(*zip(*self._float), self.weight)
        if self._other:  # BN's batch counters: integers, copied
            torch._foreach_copy_(*zip(*self._other))


class _Step:
    """One training step (forward, backward, SGD, weight average), run eagerly or replayed from
    a CUDA graph. Small networks are bound by kernel launches, not by the GPU: a graph launches
    the step's hundreds of kernels at once. The first WARM_STEPS run eagerly on a side stream
    (cuDNN's autotuning, lazy buffers, the average's first copy), then one capture serves the
    rest of the run; the numbers are those of the eager step."""

    def __init__(self, model: nn.Module, opt: torch.optim.SGD, loss_fn: nn.Module,
                 ema: WeightAverage | None, device: torch.device, graph: bool) -> None:
        self.model, self.opt, self.loss_fn, self.ema = model, opt, loss_fn, ema
        self.device = device
        self.graph_wanted = graph
        self.calls = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.side: torch.cuda.Stream | None = None  # the warm-up steps' stream
        # the graph's static input and output tensors
        self.x = self.y = self.out = self.loss = torch.empty(0)

    def __call__(self, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, loss) of the step on (xb, yb)."""
        self.calls += 1
        if not self.graph_wanted:
            return self._eager(xb, yb)
        if self.calls <= WARM_STEPS:  # counted from this process's start: a resume warms up
            self.side = self.side or torch.cuda.Stream(self.device)
            self.side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(self.side):
                out = self._eager(xb, yb)
            torch.cuda.current_stream(self.device).wait_stream(self.side)
            return out
        if self.graph is None:
            self._capture(xb, yb)
            if self.graph is None:
                return self._eager(xb, yb)
        self.x.copy_(xb)
        self.y.copy_(yb)
        self.graph.replay()
        return self.out, self.loss

    def _eager(self, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cuda = self.device.type == "cuda"
        # no autocast cache: CUDA graph capture requires it off
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cuda,
                            cache_enabled=False):
            out = self.model(xb)
            loss = self.loss_fn(out.float(), yb)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        if self.ema is not None:
            self.ema.update()
        return out.detach(), loss.detach()

    def _capture(self, xb: torch.Tensor, yb: torch.Tensor) -> None:
        self.x, self.y = xb.clone(), yb.clone()
        graph = torch.cuda.CUDAGraph()
        stream = torch.cuda.current_stream(self.device)
        try:
            self.opt.zero_grad(set_to_none=True)
            with torch.cuda.graph(graph):
                self.out, self.loss = self._eager(self.x, self.y)
        except torch.cuda.OutOfMemoryError:
            raise  # the proxy retries at half the batch
        except RuntimeError as exc:  # an op that cannot be captured: stay eager
            torch.cuda.set_stream(stream)  # a failed capture can leave its stream current
            self.graph_wanted = False
            warnings.warn(f"training without a CUDA graph: {str(exc).splitlines()[0]}",
                          stacklevel=2)
            return
        self.graph = graph

    def release(self) -> None:
        """Drop the graph and the gradients in its memory pool (the model outlives the run)."""
        self.opt.zero_grad(set_to_none=True)
        self.graph = None
        self.x = self.y = self.out = self.loss = torch.empty(0)


def _lr_lambda(total: int, warmup: float, decay: str) -> Callable[[int], float]:
    warm = max(1, int(total * warmup))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        t = (step - warm) / max(1, total - warm)
        return 0.5 * (1 + math.cos(math.pi * t)) if decay == "cosine" else max(0.0, 1 - t)
    return factor


def _to_device(split: Split, device: torch.device) -> tuple[torch.Tensor, ...]:
    return tuple(torch.from_numpy(np.ascontiguousarray(a)).to(device)
                 for a in (split.train_x, split.train_y, split.eval_x, split.eval_y))


def train(model: nn.Module, split: Split, recipe: Recipe, resolution: int, device: torch.device,
          seed: int = 0, progress: Callable[[EpochLog], None] | None = None,
          graphs: bool | None = None, state: Path | None = None) -> TrainResult:
    """Train ``model`` on ``split`` by ``recipe`` and score it on the split's eval images.

    The score depends only on the model's initial weights, ``split``, ``recipe`` and ``seed``:
    the schedule always runs to its last step. ``recipe.time_limit`` is a guard, not a length:
    a run whose measured pace would overrun it raises TooSlow (early, so little time is lost).
    Raises Diverged when the loss stops being finite. ``graphs``: replay each step from a CUDA
    graph (default and only possible on CUDA, with a torch that has fused SGD).

    ``state`` makes the run resumable: its whole state is saved there at every epoch's end,
    and on SIGINT or SIGTERM after the step in flight, which then raises Paused. A run given
    an existing state continues from it, to the very numbers of a run never stopped (on the
    CPU; CUDA kernels are not all deterministic); one of another training raises
    CheckpointError. The caller deletes the file once it has kept the result.
    """
    torch.manual_seed(seed)
    cuda = device.type == "cuda"
    saved, ident = None, None
    if state is not None:
        ident = identity(model, recipe, (split.train_x, split.train_y, split.eval_x,
                                         split.eval_y), resolution, seed, device)
        saved = load_state(state, ident)
    x, y, ex, ey = _to_device(split, device)
    layout = torch.channels_last if recipe.channels_last else torch.contiguous_format
    model = model.to(device, memory_format=layout)
    benchmark = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = cuda  # shapes are fixed for the whole run
    keeper = Keeper(state, ident, saved) if state is not None else None
    try:
        with deferred_signals() if keeper else contextlib.nullcontext([]) as pending:
            return _train(model, (x, y, ex, ey), (split.mean, split.std), recipe, resolution,
                          device, seed, progress, graphs, keeper, pending)
    finally:
        torch.backends.cudnn.benchmark = benchmark


def _train(model: nn.Module, data: tuple[torch.Tensor, ...], norm: tuple[tuple, tuple],
           recipe: Recipe, resolution: int, device: torch.device, seed: int,
           progress: Callable[[EpochLog], None] | None, graphs: bool | None,
           keeper: Keeper | None, pending: list[int]) -> TrainResult:
    cuda = device.type == "cuda"
    x, y, ex, ey = data
    mean = torch.tensor(norm[0], device=device).view(1, 3, 1, 1)  # the images' own statistics
    std = torch.tensor(norm[1], device=device).view(1, 3, 1, 1)
    bs = min(recipe.batch_size, len(y))
    steps_per_epoch = max(1, len(y) // bs)
    total = max(1, round(recipe.epochs * steps_per_epoch))
    opt, lr = _optimizer(_param_groups(model, recipe.weight_decay), recipe, device)
    factor = _lr_lambda(total, recipe.warmup, recipe.decay)
    ema = WeightAverage(model, recipe.ema) if recipe.ema else None
    loss_fn = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    # a graph needs the learning rate in a device tensor (fused SGD)
    graph = cuda and lr is not None and graphs is not False
    if recipe.compile:  # after the average's copy: the average is only scored, eagerly
        model.compile()
    run_step = _Step(model, opt, loss_fn, ema, device, graph)
    gen = torch.Generator(device=device).manual_seed(seed)
    pos = Position()
    if keeper is not None:
        keeper.restore(model, opt, lr, ema, gen, pos, EpochLog)
    pace_from = pos.step + (WARM_STEPS + 1 if graph else 1)  # one-off costs set no pace
    start = time.perf_counter() - pos.elapsed
    first = start
    epochs = math.ceil(total / steps_per_epoch)
    model.train()
    for epoch in range(pos.epoch, epochs):
        if pos.order is None:
            pos.order = torch.randperm(len(y), device=device, generator=gen)
            pos.loss_sum = torch.zeros((), device=device)
            pos.correct = torch.zeros((), device=device)
            pos.count = 0
        for i in range(pos.index, steps_per_epoch):
            if pos.step >= total:
                break
            if pending:  # a signal came: stop here, between two whole steps
                keeper.save(model, opt, ema, gen, pos, time.perf_counter() - start)
                signum = pending[0]
                pending.clear()  # handled: Paused carries it
                raise Paused(signum, keeper.path, pos.step, total)
            if recipe.time_limit and pos.step == pace_from:
                if cuda:
                    torch.cuda.synchronize()
                first = time.perf_counter()
            elif recipe.time_limit and pos.step > pace_from and pos.step % CHECK_EVERY == 0:
                if cuda:
                    torch.cuda.synchronize()  # the host may run ahead of the graph replays
                _guard(start, first, pos.step - pace_from, total - pos.step, bs,
                       recipe.time_limit)
            idx = pos.order[i * bs:(i + 1) * bs]
            xb = random_crop_flip(x[idx], recipe.crop_pad, recipe.flip, gen)
            xb = to_input(xb, mean, std, resolution, recipe.channels_last)
            yb = y[idx]
            if lr is not None:
                lr.fill_(recipe.lr * factor(pos.step))
            else:
                for group in opt.param_groups:
                    group["lr"] = recipe.lr * factor(pos.step)
            out, loss = run_step(xb, yb)
            pos.loss_sum += loss * len(yb)
            pos.correct += (out.argmax(1) == yb).sum()
            pos.count += len(yb)
            pos.step, pos.index = pos.step + 1, i + 1
            if pos.step % FINITE_EVERY == 0 and not math.isfinite(float(pos.loss_sum)):
                raise Diverged(f"loss became {float(pos.loss_sum / pos.count)} by step "
                               f"{pos.step} (epoch {epoch + 1})")
        _end_epoch(pos, epoch, epochs, total, start, progress)
        if keeper is not None:
            keeper.save(model, opt, ema, gen, pos, time.perf_counter() - start)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    run_step.release()
    final = ema.module if ema is not None else model
    acc = evaluate(final, ex, ey, mean, std, resolution, recipe.eval_batch_size, recipe.tta_flip,
                   recipe.channels_last)
    history = pos.history
    return TrainResult(acc, history[-1].loss if history else float("nan"), seconds,
                       pos.seen / seconds, pos.step / steps_per_epoch, str(device), history,
                       final)


def _end_epoch(pos: Position, epoch: int, epochs: int, total: int, start: float,
               progress: Callable[[EpochLog], None] | None) -> None:
    """Log the finished epoch and move ``pos`` to the next one."""
    pos.seen += pos.count
    mean_loss = float(pos.loss_sum) / max(1, pos.count)
    if not math.isfinite(mean_loss):
        raise Diverged(f"loss became {mean_loss} in epoch {epoch + 1}")
    elapsed = time.perf_counter() - start
    log = EpochLog(epoch + 1, epochs, mean_loss, float(pos.correct) / max(1, pos.count),
                   pos.seen / elapsed, elapsed, elapsed / pos.step * (total - pos.step))
    pos.history.append(log)
    pos.epoch, pos.index, pos.order = epoch + 1, 0, None
    if progress is not None:
        progress(log)


def _guard(start: float, first: float, paced: int, left: int, batch: int, limit: float
           ) -> None:
    """TooSlow when ``left`` more steps, at the pace of the ``paced`` steps since ``first``,
    would overrun ``limit`` (the first steps pay one-off costs, so they do not set the pace)."""
    now = time.perf_counter()
    per_step = (now - first) / paced
    projected = now - start + per_step * left
    if projected > limit:
        raise TooSlow(batch / per_step, projected, limit)
