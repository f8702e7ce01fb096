"""The budget-checked proxy evaluator: cost first, then build, train briefly and score."""

from __future__ import annotations

import dataclasses
import gc
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch

import searchspace
from evaluators.base import Evaluation, Evaluator, Status
from evaluators.data import DataError, DataInfo, Split, load_final, load_search
from evaluators.recipe import Recipe
from evaluators.train import Diverged, EpochLog, TooSlow, TrainResult, pick_device, train

__all__ = ["ProxyEvaluator", "subset", "eval_subset", "held_out"]

SUBSET_SEED = 0  # which training images a recipe's train_subset picks: fixed, not per trial


class ProxyEvaluator(Evaluator):
    """Scores genotypes by a recipe; loads the data once and keeps it.

    Example:
        >>> ev = ProxyEvaluator(load_profile("proxy-cpu"), data=CIFAR10,
        ...                     limits=searchspace.Limits(madds=600e6))
        >>> ev.evaluate(searchspace.zoo.get("resnet20")).accuracy  # doctest: +SKIP
        0.45
    """

    noisy = True  # another seed, another score: the final choice trains the best again

    def __init__(self, recipe: Recipe, data: str | Path | None = None,
                 limits: searchspace.Limits | None = None, device: str | None = None,
                 progress: Callable[[EpochLog], None] | None = None,
                 reporting: bool = False) -> None:
        self.recipe = recipe
        self.reporting = reporting  # score on the held-out validation images (search split)
        self.data = data
        self.limits = limits or searchspace.Limits()
        self.device = pick_device(device or recipe.device or None)
        self.progress = progress
        self._split: Split | None = None
        # where candidates keep their training state, so that a trial stopped by a signal
        # resumes when it is tried again (the search sets it to its run folder's states/)
        self.states: Path | None = None

    def __getstate__(self) -> dict:
        """Pickled for a worker process without its images: each loads its own."""
        return {**self.__dict__, "_split": None}

    @property
    def split(self) -> Split:
        """The data, loaded on first use: train/val for search profiles (the validation images
        a search chooses by, or with ``reporting`` the ones held out from it), train/test for
        final ones."""
        if self._split is None:
            if self.recipe.split == "search":
                split = held_out(load_search(self.data, self.recipe.val_size),
                                 self.recipe.holdout, self.reporting)
            else:
                split = load_final(self.data)
            self._split = eval_subset(subset(split, self.recipe.train_subset),
                                      self.recipe.eval_subset)
        return self._split

    @property
    def name(self) -> str:
        """The recipe's name, which is how a user picks this evaluator."""
        return self.recipe.name

    def load(self) -> None:
        """Load (or fetch) the data now, with a one-line DataError when it is missing."""
        self.split  # noqa: B018

    def data_info(self) -> DataInfo | None:
        """The images it trains on: what a search builds its networks for."""
        return self.split.info

    def warnings(self, space: searchspace.SearchSpace) -> list[str]:
        """A recipe that trains every candidate at a reduced depth cannot rank a space's
        depths."""
        depths = [d for d, choices in space.decisions.items()  # the cells template's depths
                  if d.endswith("_depth") and len(choices) > 1]
        if not depths or self.recipe.depth_mult == 1.0:
            return []
        return [f"{self.name} trains every candidate at {self.recipe.reduction()}, so it "
                f"cannot tell this space's depths apart ({', '.join(depths)})"]

    def trained_genotype(self, g: searchspace.Genotype) -> searchspace.Genotype:
        """What the proxy actually trains: ``g`` at the recipe's depth, width and resolution."""
        r = self.recipe
        if r.width_mult == 1.0 and r.depth_mult == 1.0 and not r.resolution:
            return g
        return searchspace.scale(g, depth=r.depth_mult, width=r.width_mult,
                                 resolution=r.resolution or None)

    def evaluate(self, g: searchspace.Genotype, seed: int = 0,
                 assignment: Mapping[str, object] | None = None) -> Evaluation:
        """Cost ``g``; refuse it unbuilt when over budget; else train and score it.

        ``assignment`` (the decisions behind ``g``) is not needed: training sees the genotype.
        """
        c = self.limits.cost(g)
        rejected = self.budget_check(c)
        if rejected is not None:
            return rejected
        result, reason = self._train(g, seed)
        if reason:
            return Evaluation(Status.FAILED, c.madds, c.params, split=self.split.eval_name,
                              seconds=result.seconds if result else 0.0,
                              images_per_s=result.images_per_s if result else 0.0,
                              reason=reason, device=str(self.device))
        return Evaluation(Status.OK, c.madds, c.params, result.accuracy, self.split.eval_name,
                          result.seconds, result.images_per_s, result.epochs, result.device)

    def train(self, g: searchspace.Genotype, seed: int = 0, recipe: Recipe | None = None,
              guard: bool = False, state: Path | None = None) -> TrainResult:
        """Train and score ``g`` (no budget check); raises Diverged or OutOfMemoryError.

        The recipe's time limit applies only with ``guard`` (a search's candidates: TooSlow);
        a network a user asked for (`nas train`, `nas compare`) always trains to the end.
        ``state``: a file that makes the training resumable (``evaluators.train.train``).
        """
        recipe = recipe or self.recipe
        self._check_classes(g)
        if not guard:
            recipe = recipe.replace(time_limit=0.0)
        target = self.trained_genotype(g)
        torch.manual_seed(seed)  # the seed sets the initial weights too
        model = searchspace.build(target)
        return train(model, self.split, recipe, target.resolution, self.device, seed,
                     self.progress, state=state)

    def _check_classes(self, g: searchspace.Genotype) -> None:
        """DataError when ``g``'s head is not as wide as the data has classes: a label past
        the head fails deep inside the loss, a wider head trains silently wrong."""
        n, info = self.split.num_classes, self.split.info
        if g.num_classes != n:
            raise DataError(f"{g.name or 'the network'} has {g.num_classes} outputs but "
                            f"{info.source if info else 'the data'} has {n} classes: build it "
                            f"for the data (genotype.replace(num_classes={n}, resolution="
                            f"{info.side if info else 'SIDE'}); the nas commands do so with "
                            "--data)")

    def _train(self, g: searchspace.Genotype, seed: int) -> tuple[TrainResult | None, str]:
        """(result, "") or (what was measured, why it failed). A Paused training (a signal)
        keeps its state for the retry; any other end removes it."""
        self.split  # noqa: B018 - load the data before the clock starts
        out = self._attempts(g, seed)
        if self.states is not None:
            for path in self.states.glob(f"{g.key()}-s{seed}-b*.state"):
                path.unlink(missing_ok=True)
        return out

    def _attempts(self, g: searchspace.Genotype, seed: int) -> tuple[TrainResult | None, str]:
        recipe = self.recipe
        for attempt in range(2):
            start = time.perf_counter()
            result = None
            state = None if self.states is None else \
                self.states / f"{g.key()}-s{seed}-b{recipe.batch_size}.state"
            try:
                result = self.train(g, seed, recipe, guard=True, state=state)
            except Diverged as exc:
                return None, f"diverged: {exc}"
            except TooSlow as exc:
                return TrainResult(math.nan, math.nan, time.perf_counter() - start,
                                   exc.images_per_s, 0.0, str(self.device)), str(exc)
            except torch.cuda.OutOfMemoryError:
                pass
            if result is None:  # out of memory
                _free()  # outside the except block: its traceback no longer holds the tensors
                if attempt == 0 and recipe.batch_size > 1:
                    # linear scaling rule: half the batch, half the learning rate
                    recipe = recipe.replace(batch_size=recipe.batch_size // 2, lr=recipe.lr / 2)
                    continue
                return None, "out of memory: on the GPU, also at half the batch"
            # the wall time of this attempt, or the training's own total when it resumed
            result.seconds = max(result.seconds, time.perf_counter() - start)
            result.model = None  # the search keeps numbers only
            if not math.isfinite(result.accuracy):
                return None, "not finite: the accuracy"
            return result, ""
        return None, "out of memory: on the GPU"


def subset(split: Split, n: int) -> Split:
    """``split`` training on ``n`` of its training images (0: all): the same images for every
    candidate and every seed, so scores differ only by the network and its seed."""
    if not n or n >= len(split.train_y):
        return split
    pick = np.sort(np.random.default_rng(SUBSET_SEED).permutation(len(split.train_y))[:n])
    return dataclasses.replace(split, train_x=split.train_x[pick], train_y=split.train_y[pick])


def eval_subset(split: Split, n: int) -> Split:
    """``split`` scored on ``n`` of its eval images (0: all), the same ones every time."""
    if not n or n >= len(split.eval_y):
        return split
    pick = np.sort(np.random.default_rng(SUBSET_SEED).permutation(len(split.eval_y))[:n])
    return dataclasses.replace(split, eval_x=split.eval_x[pick], eval_y=split.eval_y[pick])


def held_out(split: Split, fraction: float, reporting: bool) -> Split:
    """``split`` scored on the ``fraction`` of its validation images kept from the search
    (``reporting``), or on the others: a winner is reported on images that took no part in
    choosing it."""
    n = round(fraction * len(split.eval_y))
    if not 0 < n < len(split.eval_y):
        return split
    order = np.random.default_rng(SUBSET_SEED).permutation(len(split.eval_y))
    pick = np.sort(order[:n] if reporting else order[n:])
    return dataclasses.replace(split, eval_x=split.eval_x[pick], eval_y=split.eval_y[pick],
                               eval_name="holdout" if reporting else "val")


def _free() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
