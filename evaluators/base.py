"""The Evaluator contract: what every evaluator takes, returns and promises.

The search loop, the final choice (``nas.rescore``), the comparison and the Python API
(``nas.search``) rely on this class and nothing else; ``tests/test_evaluator_contract.py``
runs one suite over every evaluator we ship.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

import torch

import searchspace
from evaluators.data import DataInfo

__all__ = ["Status", "Evaluation", "Evaluator"]


class Status(StrEnum):
    """How an evaluation ended; the same words as the search's ``nas.trial.Status``."""

    OK = "ok"  # scored: ``accuracy`` holds the score
    REJECTED = "rejected"  # over the budget: never built, never trained
    FAILED = "failed"  # built or trained, and failed: ``reason`` says why


@dataclass(frozen=True)
class Evaluation:
    """The outcome for one candidate."""

    status: Status
    madds: int  # of the genotype itself (the budget applies to it)
    params: int
    accuracy: float | None = None  # the score, a fraction; on the images ``split`` names
    split: str = "val"  # "val", "holdout" (search profiles), "test" (final), a table's, ...
    seconds: float = 0.0  # build, train and score
    images_per_s: float = 0.0  # training throughput
    epochs: float = 0.0
    device: str = ""
    reason: str = ""
    # what the network is truly worth, where the evaluator knows it (a table's mean over its
    # trainings, as a fraction); None for a real training, whose one score is all there is
    worth: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", Status(self.status))  # "ok" from older callers

    def to_dict(self) -> dict:
        """Plain data (for JSON and trial attributes)."""
        return {**asdict(self), "status": str(self.status)}


class Evaluator(abc.ABC):
    """Scores genotypes. The lifecycle:

    1. Construction is cheap and reads nothing: an evaluator can be made, checked and handed
       to worker processes before any data exists.
    2. ``load()`` reads what scoring needs (images, a table) once; a missing or damaged
       source raises ``evaluators.DataError`` with one line that says what to pass. It is
       called before a search starts, so a bad ``--data`` fails before any work.
    3. ``evaluate(genotype, seed, assignment)`` is called once per candidate, from one
       thread. It never raises for a bad candidate: over the budget it returns REJECTED
       without building anything; a candidate it cannot score returns FAILED with a reason.
       (An exception that escapes anyway fails that trial only, with its message.) The same
       genotype and seed give the same score, up to what the device makes nondeterministic.

    Attributes a caller may read:
        name: how a user names it (``--evaluator``); labels its scores in reports.
        noisy: whether another seed can give another score (then the final choice trains the
            best networks again, ``nas.rescore``).
        percent: whether its scores are accuracies (fractions, shown in percent); a
            function's scores are shown as they are, under its name.
        template: None when it scores any genotype; else the space whose networks alone it
            scores (a benchmark's table), and the search refuses any other space.
        device: where it computes; ``use_device`` moves it (one GPU a worker process).
        limits: the budget ``evaluate`` applies.

    ``data_info()`` says which images it trains on (after ``load``), so that a search builds
    its networks for their classes and size; None (the default) when it has no images of its
    own (a table, a function), and the space's networks are scored as they are.
    """

    name: str = ""
    noisy: bool = True
    percent: bool = True
    template: str | None = None
    device: torch.device = torch.device("cpu")
    limits: searchspace.Limits = searchspace.Limits()

    @property
    def scores_any_genotype(self) -> bool:
        """Whether it scores any genotype (zoo networks, scaled ones), not a table's only."""
        return self.template is None

    def load(self) -> None:
        """Read what scoring needs, once (nothing, by default)."""

    def data_info(self) -> DataInfo | None:
        """The images it trains on (classes, side, statistics), or None when it has none."""
        return None

    @abc.abstractmethod
    def evaluate(self, genotype: searchspace.Genotype, seed: int = 0,
                 assignment: Mapping[str, Any] | None = None) -> Evaluation:
        """Score ``genotype``.

        Args:
            genotype: the candidate.
            seed: its training seed (the initial weights and the batches; a table picks one
                of its trainings by it).
            assignment: the search space's decisions behind ``genotype``, when it came from
                a search (a table looks its row up by them).

        Returns:
            An ``Evaluation``: status, cost, and the score as ``accuracy`` when OK.
        """

    def use_device(self, device: torch.device) -> None:
        """Compute on ``device`` from now on (a worker process takes one GPU of several)."""
        self.device = device

    def warnings(self, space: searchspace.SearchSpace) -> list[str]:
        """What it cannot tell apart in ``space``, one line each (shown before a search)."""
        return []

    def found(self, assignment: Mapping[str, Any], limits: searchspace.Limits
              ) -> dict | None:
        """What it knows of a search's winner beyond its score (a table's published row),
        as plain data for summary.json; None when nothing."""
        return None

    def found_text(self, found: dict, budget: str) -> str:
        """One paragraph of the report from ``found``'s dict."""
        return ""

    def budget_check(self, c: searchspace.Cost) -> Evaluation | None:
        """REJECTED, with the reason, when a genotype of cost ``c`` is over ``limits``."""
        why = self.limits.over(c)
        return Evaluation(Status.REJECTED, c.madds, c.params, reason=why) if why else None
