"""What a study's trials add up to: counts by outcome, failures by reason, the winner."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from nas.rescore import choose
from nas.trial import TAKEN, TRAINED, Record, Status, records

__all__ = ["claimed", "evaluated", "counts", "best_trial", "failures"]


def claimed(study: optuna.Study) -> list[Record]:
    """Trials that count towards --trials: evaluated, or being evaluated (rejected do not)."""
    return [t for t in records(study) if t.status in TAKEN]


def evaluated(study: optuna.Study) -> list[Record]:
    """Trials whose candidate was trained (scored or failed)."""
    return [t for t in records(study) if t.status in TRAINED]


_COUNTED = {Status.OK: "complete", Status.REJECTED: "rejected", Status.FAILED: "failed",
            Status.REUSED: "reused", Status.ORPHANED: "retried", Status.INTERRUPTED: "retried",
            Status.RESCORED: "rescored"}


def counts(study: optuna.Study) -> dict[str, int]:
    """How many trials are complete, rejected, reused, failed, retried (queued again after
    their worker died or a signal stopped them), rescored (trained again for the final
    choice) and running."""
    out = {"complete": 0, "rejected": 0, "reused": 0, "failed": 0, "retried": 0,
           "rescored": 0, "running": 0}
    for t in records(study):
        key = _COUNTED.get(t.status)
        if key:
            out[key] += 1
        elif t.state == TrialState.RUNNING:
            out["running"] += 1
    return out


def best_trial(study: optuna.Study) -> Record | None:
    """The first trial of the winning network: the highest validation accuracy (ties: fewer
    multiply-adds), or, where the best were trained again, the highest mean of them
    (``nas.rescore.choose``)."""
    choice = choose(records(study, (TrialState.COMPLETE,)))
    return None if choice is None else choice.record


def failures(study: optuna.Study) -> dict[str, int]:
    """Failed trials, and those whose worker died, by the kind of their reason (its first
    words, before a colon): {"diverged": 2, "worker died": 1, ...}. A trial stopped by a
    signal is not a failure: it is queued for the resume. A training of the final choice
    that failed counts too."""
    out: dict[str, int] = {}
    for t in records(study):
        if t.status in (Status.FAILED, Status.ORPHANED) or (
                t.status == Status.RESCORED and t.state == TrialState.FAIL):
            kind = str(t.reason or "unknown").split(":")[0].strip() or "unknown"
            out[kind] = out.get(kind, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))
