"""The typed budget (searchspace.Limits) and the trial record (nas.trial) the search keeps."""

from __future__ import annotations

import math

import optuna
import pytest
from optuna.storages import InMemoryStorage
from optuna.trial import TrialState

import searchspace
from nas.strategies.base import history
from nas.strategies.synthetic import SyntheticObjective
from nas.loop import Stop, run_worker
from nas.trial import Record, Status, status_of, write
from searchspace import Cost, Limits

SPACE = searchspace.load_space("cells")


def test_limits_say_how_much_of_the_budget_a_network_uses() -> None:
    both = Limits(madds=600e6, params=2e6)
    assert list(both.items()) == [("madds", 600e6), ("params", 2e6)]
    assert both.use(Cost(300_000_000, 1_500_000, ())) == 0.75  # the larger share
    assert both.fits(Cost(600_000_000, 2_000_000, ()))
    assert not both.fits(Cost(600_000_001, 0, ()))
    assert both.over(Cost(0, 3_000_000, ())) == "params 3,000,000 over the budget of 2,000,000"
    assert both.over(Cost(1, 1, ())) == ""
    assert both.scaled(0.25) == Limits(madds=150e6, params=0.5e6)
    none = Limits()
    assert not none and none.use(Cost(10**12, 10**9, ())) == 0.0 and none.fits(Cost(1, 1, ()))
    assert none.scaled(0.5) == none
    for bad in (0, -1, math.inf, math.nan):
        with pytest.raises(ValueError, match="positive and finite"):
            Limits(madds=bad)


def test_the_search_takes_only_typed_limits() -> None:
    with pytest.raises(TypeError, match="searchspace.Limits"):
        run_worker(InMemoryStorage(), "s", SPACE, "random", 0, lambda g, s, a: None,
                   {"madds": 600e6}, Stop(trials=1))


def test_a_trial_of_a_plain_optuna_study_reads_as_a_record() -> None:
    study = optuna.create_study()
    trial = study.ask()
    trial.suggest_int("x", 0, 3)
    trial.set_user_attr("note", "mine")
    study.tell(trial, 0.5)
    r = Record.of(study.get_trials()[0])
    assert r.status is None and r.label == "complete" and r.values == (0.5,)
    assert r.decisions == {"x": trial.params["x"]} and r.extra == {"note": "mine"}
    assert status_of(study.get_trials()[0], missing=Status.OK) == Status.OK


def test_a_status_of_no_version_of_ours_is_kept_as_written() -> None:
    study = optuna.create_study(direction="maximize")
    for status in ("archived", None):
        trial = study.ask()
        for name, choices in SPACE.decisions.items():
            trial.suggest_categorical(name, choices)
        if status:
            trial.set_user_attr("status", status)
        study.tell(trial, 0.9)
    archived, plain = study.get_trials()
    r = Record.of(archived)
    assert r.status is None and r.label == "archived" and not r.scored
    assert status_of(archived, missing=Status.OK) is None
    # the samplers learn from scored trials of ours and from plain Optuna ones, not others
    assert [t.number for t in history(study, SPACE)] == [plain.number]


def test_writing_a_field_the_record_lacks_fails_before_anything_is_stored() -> None:
    study = optuna.create_study()
    trial = study.ask()
    with pytest.raises(KeyError, match="statsu"):
        write(trial, seed=1, statsu=Status.OK)
    assert study.get_trials()[0].user_attrs == {}


class _Recording(InMemoryStorage):
    """The order in which user attributes reach the storage, per trial."""

    def __init__(self) -> None:
        super().__init__()
        self.order: dict[int, list[tuple[str, object]]] = {}

    def set_trial_user_attr(self, trial_id: int, key: str, value) -> None:
        self.order.setdefault(trial_id, []).append((key, value))
        super().set_trial_user_attr(trial_id, key, value)


def test_the_training_seed_is_stored_before_the_claim() -> None:
    """A worker that dies right after claiming a trial leaves its seed: the retry trains with
    the same one."""
    storage = _Recording()
    objective = SyntheticObjective(SPACE, seed=0)
    run_worker(storage, "s", SPACE, "random", 3, objective.evaluate, Limits(madds=600e6),
               Stop(trials=4), log=lambda line: None)
    study = optuna.load_study(study_name="s", storage=storage)
    trained = [t for t in study.get_trials() if t.state == TrialState.COMPLETE]
    assert len(trained) == 4
    for t in trained:
        writes = storage.order[t._trial_id]
        claim = writes.index(("status", Status.TRAINING))
        assert ("seed", 3 * 100_003 + t.number) in writes[:claim]
