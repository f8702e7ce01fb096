"""A trial as the search records it: its status, and one record type read by the search loop,
the samplers, the run folder and the report.

Optuna keeps a trial's state (RUNNING, COMPLETE, PRUNED, FAIL, WAITING) and its decisions; the
search keeps the rest as user attributes whose names are ``Record``'s fields, stored as plain
values (a run folder written by an older version still reads). Write them with ``write``;
read a stored trial with ``Record.of``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from evaluators.base import Status as Outcome
from nas import optuna_internals as internals

__all__ = ["Status", "Record", "TAKEN", "TRAINED", "records", "status_of", "fields_of", "write",
           "write_stored"]


class Status(StrEnum):
    """What the search did with a trial (its ``status`` attribute); an evaluation's own
    outcome (``evaluators.Status``) keeps its word: ``Status(evaluation.status)``."""

    TRAINING = "training"  # claimed, being trained
    OK = Outcome.OK.value  # scored
    FAILED = Outcome.FAILED.value  # trained and failed, with a reason (not tried again)
    REJECTED = Outcome.REJECTED.value  # over the budget, never built
    REUSED = "reused"  # a network scored already: its result told again
    DUPLICATE = "duplicate"  # another worker took the same network first
    SURPLUS = "surplus"  # the last place of --trials went to a lower-numbered trial
    ORPHANED = "orphaned"  # its worker died: failed with the reason, queued again once
    INTERRUPTED = "interrupted"  # stopped by a signal: queued again for --resume
    RESCORED = "rescored"  # a scored network trained again with another seed (nas.rescore)


TAKEN = frozenset({Status.TRAINING, Status.OK, Status.FAILED})  # claim a place and a network
TRAINED = frozenset({Status.OK, Status.FAILED})  # the candidate was trained and judged


@dataclass(slots=True)
class Record:
    """One trial: Optuna's part (number, state, values, decisions: what Optuna calls
    ``params``), then the search's (``params`` here is the network's parameter count)."""

    number: int
    state: TrialState
    values: tuple[float, ...] | None  # (accuracy,) or, for nsga2, (accuracy, madds)
    decisions: dict[str, Any]
    trial_id: int  # the storage's id (numbers are per study, ids per storage)
    started: datetime | None
    status: Status | None = None  # None: asked, not judged yet
    worker: str | None = None  # host:pid:token of the process that ran it
    key: str | None = None  # the network's identity (Genotype.key())
    genotype: str | None = None  # its YAML
    madds: int | None = None
    params: int | None = None
    latency_ms: float | None = None  # predicted, under a latency budget
    accuracy: float | None = None
    split: str | None = None  # the images the accuracy was measured on
    worth: float | None = None  # what the network is truly worth, where a table knows it
    seconds: float | None = None
    images_per_s: float | None = None
    epochs: float | None = None
    device: str | None = None
    reason: str | None = None  # why it failed, was rejected or queued again
    seed: int | None = None  # its training seed (a retry trains with the same one)
    retries: int | None = None  # deaths of its worker this network has had
    retry_of: int | None = None  # the trial it retries
    reused_from: int | None = None  # the trial whose result it repeats
    rescore_of: int | None = None  # the trial whose network it trains again (another seed)
    screened: int | None = None  # proposals the zero-cost screen compared for it
    extra: dict[str, Any] = field(default_factory=dict)  # attributes of no field here

    @classmethod
    def of(cls, t: FrozenTrial) -> Record:
        # read for every trial several times a trial (the loop's checks, the samplers): kept
        # to a few microseconds, the stored dicts shared rather than copied
        attrs = t.user_attrs
        known = {k: v for k, v in attrs.items() if k in ATTRS}
        extra = {k: v for k, v in attrs.items() if k not in ATTRS} \
            if len(known) < len(attrs) else {}
        raw = known.get("status")
        known["status"] = status = _STATUSES.get(raw) if isinstance(raw, str) else None
        if status is None and raw is not None:  # a status of no version of ours: kept
            extra = {**extra, "status": raw}
        return cls(t.number, t.state, tuple(t.values) if t.values else None, t.params,
                   internals.trial_id(t), t.datetime_start, **known, extra=extra)

    @property
    def label(self) -> str:
        """The status (as stored), or Optuna's state for a trial the search has not judged."""
        if self.status:
            return str(self.status)
        return str(self.extra.get("status") or self.state.name.lower())

    @property
    def scored(self) -> bool:
        return self.status == Status.OK and self.state == TrialState.COMPLETE


ATTRS = frozenset(f.name for f in fields(Record)) - {
    "number", "state", "values", "decisions", "trial_id", "started", "extra"}


_STATUSES = {s.value: s for s in Status}


def _status(value: object) -> Status | None:
    return _STATUSES.get(value) if isinstance(value, str) else None


def status_of(t: FrozenTrial, missing: Status | None = None) -> Status | None:
    """A stored trial's status alone (cheaper than a whole Record, for the samplers):
    ``missing`` when it has none (a trial of a plain Optuna study), None when it is not one
    of ours."""
    if "status" not in t.user_attrs:
        return missing
    return _status(t.user_attrs["status"])


def records(study: optuna.Study, states: tuple[TrialState, ...] | None = None
            ) -> list[Record]:
    """The study's trials, by number."""
    trials = study.get_trials(deepcopy=False, states=states)
    return [Record.of(t) for t in sorted(trials, key=lambda t: t.number)]


def _check(attrs: dict[str, Any]) -> None:
    unknown = set(attrs) - ATTRS
    if unknown:  # a misspelt name would be stored and never read
        raise KeyError(f"not a trial record field: {', '.join(sorted(unknown))}")


def fields_of(**attrs: Any) -> dict[str, Any]:
    """``attrs`` as user attributes, their names checked (for ``Study.enqueue_trial``)."""
    _check(attrs)
    return attrs


def write(trial: optuna.Trial, **attrs: Any) -> None:
    """Record ``attrs`` (Record's field names) on a live trial."""
    _check(attrs)
    for name, value in attrs.items():
        trial.set_user_attr(name, value)


def write_stored(study: optuna.Study, trial_id: int, **attrs: Any) -> None:
    """Record ``attrs`` on a trial by its storage id (a trial another process runs)."""
    _check(attrs)
    for name, value in attrs.items():
        internals.set_trial_user_attr(study, trial_id, name, value)
