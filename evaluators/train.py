"""One training loop for every recipe: data on the device, batched augmentation, Nesterov SGD.

What pays in the fastest CIFAR-10 trainers (airbench, hlb-CIFAR10, Page's ResNet-9) and
still fits *arbitrary* genotypes: the whole dataset on the device as uint8, augmentation
on batches, label smoothing, a linear warm-up then decay to zero, no weight decay on BN and
biases, an exponential moving average of the weights, flip test-time augmentation,
channels_last everywhere and bf16 autocast on CUDA.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from evaluators.augment import random_crop_flip, to_input
from evaluators.data import MEAN, STD, Split
from evaluators.recipe import Recipe

__all__ = ["train", "evaluate", "TrainResult", "EpochLog", "Diverged", "TooSlow", "pick_device"]

CHECK_EVERY = 8  # steps between checks of the time guard


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
          seed: int = 0, progress: Callable[[EpochLog], None] | None = None) -> TrainResult:
    """Train ``model`` on ``split`` by ``recipe`` and score it on the split's eval images.

    The score depends only on the model's initial weights, ``split``, ``recipe`` and ``seed``:
    the schedule always runs to its last step. ``recipe.time_limit`` is a guard, not a length:
    a run whose measured pace would overrun it raises TooSlow (early, so little time is lost).
    Raises Diverged when the loss stops being finite.
    """
    torch.manual_seed(seed)
    cuda = device.type == "cuda"
    x, y, ex, ey = _to_device(split, device)
    mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=device).view(1, 3, 1, 1)
    model = model.to(device, memory_format=torch.channels_last)
    bs = min(recipe.batch_size, len(y))
    steps_per_epoch = max(1, len(y) // bs)
    total = max(1, round(recipe.epochs * steps_per_epoch))
    opt = torch.optim.SGD(_param_groups(model, recipe.weight_decay), lr=recipe.lr,
                          momentum=recipe.momentum, nesterov=True)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(total, recipe.warmup,
                                                              recipe.decay))
    ema = (AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(recipe.ema), use_buffers=True)
           if recipe.ema else None)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    gen = torch.Generator(device=device).manual_seed(seed)
    history: list[EpochLog] = []
    start = time.perf_counter()
    step, seen, first = 0, 0, start
    epochs = math.ceil(total / steps_per_epoch)
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(y), device=device, generator=gen)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device)
        count = 0
        for i in range(steps_per_epoch):
            if step >= total:
                break
            if recipe.time_limit and step == 1:
                first = time.perf_counter()  # the pace is measured after the first step
            elif recipe.time_limit and step % CHECK_EVERY == 0:
                _guard(start, first, step, total, bs, recipe.time_limit)
            idx = order[i * bs:(i + 1) * bs]
            xb = random_crop_flip(x[idx], recipe.crop_pad, recipe.flip, gen)
            xb = to_input(xb, mean, std, resolution, True)
            yb = y[idx]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
                out = model(xb)
                loss = loss_fn(out.float(), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if ema is not None:
                ema.update_parameters(model)
            loss_sum += loss.detach() * len(yb)
            correct += (out.detach().argmax(1) == yb).sum()
            count += len(yb)
            step += 1
        seen += count
        mean_loss = float(loss_sum) / max(1, count)
        if not math.isfinite(mean_loss):
            raise Diverged(f"loss became {mean_loss} in epoch {epoch + 1}")
        elapsed = time.perf_counter() - start
        log = EpochLog(epoch + 1, epochs, mean_loss, float(correct) / max(1, count),
                       seen / elapsed, elapsed, elapsed / step * (total - step))
        history.append(log)
        if progress is not None:
            progress(log)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    final = ema.module if ema is not None else model
    acc = evaluate(final, ex, ey, mean, std, resolution, recipe.eval_batch_size, recipe.tta_flip)
    return TrainResult(acc, history[-1].loss if history else float("nan"), seconds,
                       seen / seconds, step / steps_per_epoch, str(device), history, final)


def _guard(start: float, first: float, step: int, total: int, batch: int, limit: float
           ) -> None:
    """TooSlow when ``total`` steps at the pace since the first step would overrun ``limit``
    (the first step pays one-off costs, so it does not set the pace)."""
    now = time.perf_counter()
    per_step = (now - first) / (step - 1)
    projected = now - start + per_step * (total - step)
    if projected > limit:
        raise TooSlow(batch / per_step, projected, limit)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, mean: torch.Tensor,
             std: torch.Tensor, resolution: int, batch_size: int, tta_flip: bool) -> float:
    """Top-1 accuracy on (x, y), optionally averaging the logits of each image and its flip."""
    model.eval()
    cuda = x.device.type == "cuda"
    correct = 0
    for i in range(0, len(y), batch_size):
        xb = to_input(x[i:i + batch_size], mean, std, resolution, True)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=cuda):
            logits = model(xb).float()
            if tta_flip:
                logits = logits + model(xb.flip(3)).float()
        correct += int((logits.argmax(1) == y[i:i + batch_size]).sum())
    return correct / max(1, len(y))
