"""NNI 3.0 as an optional engine: its strategies drive our search loop, our spaces are NNI's.

    pip install -e '.[nni]'        # nothing else in the project imports NNI

Two ways in:

- ``nas search --strategy nni:evolution`` (``nni:rl``, ``nni:tpe``, ``nni:random``): NNI's own
  strategy classes propose the networks, and the search is ours from there on (budget checked
  before training, every trial in the run's Optuna study, winner scaled, exported, compared).
- ``model_space(space)``: an NNI ``ModelSpace`` whose frozen samples build our networks, for
  NNI users who run NNI's own experiments on our spaces.

How an NNI strategy runs inside an Optuna study: an NNI strategy is a loop that submits models
to an execution engine and reads their metrics back. ``_Bridge`` is an engine whose execution of
a model is one trial of the study. The strategy runs in a thread of its own in lock-step with
the study: while a trial trains, the strategy waits inside ``submit_models``; while the strategy
thinks, the study waits in ``sample_relative``. So a search is as reproducible as ours: the same
seed gives the same trials. Every NNI callback runs in the strategy's thread.

What the study tells NNI: a scored trial's accuracy, and a network scored before (ours never
trains one twice) its stored accuracy; a network over the budget (NNI has no notion of one) is
not trained and reaches NNI as a failed model, without a metric, as does a failed candidate.

NNI's defaults changed here, and why (measured on NAS-Bench-201, 100 cells a search):
- TPE minimises by default: told to maximise. NNI's TPE strategy also sleeps one second per
  model, polling a real engine; the bridge answers when the trial ends, so it does not sleep.
- Regularized evolution's default population of 100 makes a search of 100 trials a random
  search: the population is a fifth of the trials, from 4 to 20 (20 for 100 trials and for a
  search without --trials), tournaments of a quarter of it.
- PPO (``PolicyBasedRL``) takes no seed: torch's and numpy's generators are seeded in its
  thread.
What NNI cannot do here fails in one line: resuming a run (its strategies keep their state in
memory), parallel workers (one strategy object proposes for one process), ``--screen``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import random
import sys
import threading
import warnings
from collections.abc import Callable
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from nas.errors import UserError
from nas.strategies.base import Fits, Judge, distributions, searches, taken_keys
from searchspace import SearchSpace

INSTALL = "pip install -e '.[nni]' (from the project's folder)"

try:
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        # gym prints a notice on import; NNI warns that it does not know torch's newer classes
        warnings.simplefilter("ignore")
        import nni
        from nni.mutable import Categorical, MutableDict, ensure_frozen
        from nni.nas.execution import ExecutionEngine
        from nni.nas.execution.event import FinalMetricEvent, TrainingEndEvent
        from nni.nas.nn.pytorch import ModelSpace
        from nni.nas.space import (
            ExecutableModelSpace,
            ModelStatus,
            RawFormatModelSpace,
            model_context,
        )
        from nni.nas.strategy import TPE, PolicyBasedRL, Random, RegularizedEvolution, Strategy
        from nni.nas.strategy.rl import has_tianshou
        from nni.runtime.log import silence_stdout
except Exception as exc:  # the extra is not installed, or NNI fails against its neighbours
    line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    raise ImportError(f"NNI's strategies need the nni extra: {INSTALL} ({line})") from exc
if not has_tianshou:  # NNI imports without it, and its PPO then fails
    raise ImportError(f"NNI's strategies need the nni extra: {INSTALL} (tianshou 0.5.1 "
                      "and gym are missing)")

__all__ = ["model_space", "decisions", "NNISampler", "STRATEGIES", "make", "INSTALL"]

silence_stdout()  # NNI logs to stdout, where --json writes its one line
logging.getLogger("nni").setLevel(logging.CRITICAL)  # per-model lines; failures reach us
warnings.filterwarnings("ignore", module=r"(nni|tianshou|gym)(\.|$)")


def decisions(space: SearchSpace) -> MutableDict:
    """The space's decisions as NNI categoricals, labelled with the decisions' names."""
    return MutableDict({name: Categorical(list(choices), label=name)
                        for name, choices in space.decisions.items()})


class SpaceNet(ModelSpace):
    """One of our spaces as an NNI model space: a frozen sample is our network for it.

    Example (NNI's own multi-trial experiment on our space):
        >>> from nni.nas.evaluator import FunctionalEvaluator
        >>> from nni.nas.experiment import NasExperiment
        >>> from nni.nas.strategy import RegularizedEvolution
        >>> def train(model):  # NNI calls it with each network it samples
        ...     pass  # train ``model`` here, then nni.report_final_result(accuracy)
        >>> space = nas.nni.model_space("nb201")
        >>> exp = NasExperiment(space, FunctionalEvaluator(train), RegularizedEvolution())
        >>> exp.run(port=8081)  # doctest: +SKIP
    """

    def __init__(self, space: str) -> None:
        import searchspace

        super().__init__()
        self.space_name = space
        searched = searchspace.load_space(space)
        assignment = {}
        for name, choices in searched.decisions.items():
            chosen = self.add_mutable(nni.choice(name, list(choices)))
            assignment[name] = ensure_frozen(chosen, strict=False)
        self.assignment = assignment  # unfrozen: the first choice of each decision
        self.genotype = searched.genotype(assignment)
        self.net = searchspace.build(self.genotype)

    def freeze(self, sample: dict[str, Any]) -> SpaceNet:
        with model_context(sample):
            return self.__class__(self.space_name)

    def forward(self, x):
        return self.net(x)


def model_space(space: str) -> SpaceNet:
    """NNI ``ModelSpace`` of one of our spaces (a name such as ``nb201``, or a YAML path)."""
    return SpaceNet(space)


# --- the bridge: NNI strategies proposing the trials of an Optuna study ------------------------

class _Bridge(ExecutionEngine):
    """An NNI execution engine whose models are executed as trials of an Optuna study."""

    def __init__(self) -> None:
        super().__init__()
        self._cv = threading.Condition()
        self._offer: ExecutableModelSpace | None = None  # submitted, waiting for its trial
        self._results: dict[int, float | None] = {}  # id(model) -> metric (None: failed)
        self._history: list[ExecutableModelSpace] = []
        self.closed = False
        self.done = False  # the strategy's thread has ended
        self.error: BaseException | None = None

    # --- the strategy's side (its thread) ---
    def submit_models(self, *models: ExecutableModelSpace) -> None:
        for model in models:
            with self._cv:
                self._history.append(model)
                if self.closed:
                    metric: float | None = None
                else:
                    model.status = ModelStatus.Training
                    self._offer = model
                    self._cv.notify_all()
                    self._cv.wait_for(lambda m=model: id(m) in self._results or self.closed)
                    metric = self._results.pop(id(model), None)
                    if self._offer is model:
                        self._offer = None
            if metric is not None:
                self.dispatch_model_event(FinalMetricEvent(model, metric))
            status = ModelStatus.Trained if metric is not None else ModelStatus.Failed
            self.dispatch_model_event(TrainingEndEvent(model, status))

    def list_models(self, status: ModelStatus | None = None) -> list[ExecutableModelSpace]:
        return [m for m in self._history if status is None or m.status == status]

    def idle_worker_available(self) -> bool:
        return True  # submit_models returns only when its trial has ended

    def budget_available(self) -> bool:
        return not self.closed

    def shutdown(self) -> None:
        self.close()

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state_dict: dict) -> None:
        pass

    # --- the study's side ---
    def take(self) -> ExecutableModelSpace | None:
        """The next model the strategy submits (None: the strategy has ended)."""
        with self._cv:
            self._cv.wait_for(lambda: self._offer is not None or self.done)
            model, self._offer = self._offer, None
            return model

    def finish(self, model: ExecutableModelSpace, metric: float | None) -> None:
        with self._cv:
            self._results[id(model)] = metric
            self._cv.notify_all()

    def close(self) -> None:
        with self._cv:
            self.closed = True
            self._cv.notify_all()

    def ended(self, error: BaseException | None) -> None:
        with self._cv:
            self.done, self.error = True, error
            self._cv.notify_all()


class _TPE(TPE):
    """NNI's TPE strategy without its one-second sleep a model (it polls a real engine's
    workers; the bridge's ``submit_models`` returns when the trial has ended)."""

    def _run(self) -> None:
        space = {label: m.as_legacy_dict() for label, m in self.model_space.simplify().items()}
        with self._thread_lock:
            self.tuner.update_search_space(space)
        while self.engine.budget_available():
            with self._thread_lock:
                try:
                    param = self.tuner.generate_parameters(self._model_count)
                except nni.NoMoreTrialError:
                    return
                model = self.model_space.freeze(param)
                self._model_to_id[model] = self._model_count
                self._model_count += 1
            self.engine.submit_models(model)


def _evolution(seed: int, trials: int | None) -> Strategy:
    population = min(20, max(4, (trials or 100) // 5))
    return RegularizedEvolution(population_size=population, sample_size=max(2, population // 4),
                                seed=seed)


STRATEGIES: dict[str, Callable[[int, int | None], Strategy]] = {
    "nni:evolution": _evolution,
    "nni:rl": lambda seed, trials: PolicyBasedRL(),
    "nni:tpe": lambda seed, trials: _TPE(optimize_mode="maximize", seed=seed),
    "nni:random": lambda seed, trials: Random(seed=seed),
}


class NNISampler(BaseSampler):
    """An Optuna sampler whose proposals are an NNI strategy's (see the module doc).

    When the strategy ends on its own (it found nothing new to propose), random new networks
    inside the budget fill the rest of the search.
    """

    def __init__(self, name: str, space: SearchSpace, seed: int = 0, fits: Fits | None = None,
                 trials: int | None = None) -> None:
        self.name, self.space, self.seed = name, space, seed
        self.strategy = STRATEGIES[name](seed, trials)
        self.judge = Judge(space, fits)
        self._dists = distributions(space)
        self._fallback = RandomSampler(seed=seed)
        self._bridge = _Bridge()
        self._thread: threading.Thread | None = None
        self._pending: dict[int, ExecutableModelSpace] = {}  # trial number -> NNI's model
        self.filled = 0  # proposals made after the strategy ended (random new networks)

    def _start(self) -> None:
        import numpy as np
        import torch

        executable = RawFormatModelSpace(decisions(self.space), None)

        def run() -> None:
            error = None
            try:
                torch.manual_seed(self.seed)  # PPO's policy and its replay buffer's draws:
                np.random.seed(self.seed % 2**32)  # NNI takes no seed for them
                self.strategy.initialize(executable, self._bridge)
                self.strategy.run()
            except BaseException as exc:  # re-raised in the study's thread
                error = exc
            finally:
                self._bridge.ended(error)
        self._thread = threading.Thread(target=run, name=f"{self.name} strategy", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """End the strategy's thread (the search needs no more proposals)."""
        self._bridge.close()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def _next(self, study: Study, trial: FrozenTrial) -> dict[str, Any]:
        if self._thread is None:
            self._start()
        model = self._bridge.take()
        if model is None:
            error = self._bridge.error
            if error is not None:
                line = str(error).splitlines()[0] if str(error) else ""
                raise UserError(f"NNI's {self.name} strategy failed: "
                                f"{type(error).__name__}: {line}", code=1) from error
            if not self.filled:
                print(f"note: NNI's {self.name} strategy ended on its own after "
                      f"{len(self._bridge.list_models())} proposals; random new networks "
                      "fill the rest of the search", file=sys.stderr, flush=True)
            self.filled += 1
            rng = random.Random(hash((self.seed, trial.number, 1)) & 0xFFFFFFFF)
            return self.judge.random_new(rng, taken_keys(study), study, trial)
        self._pending[trial.number] = model
        sample = model.sample
        # NNI may hand back 1 for 1.0 (JSON): our choices' own values, by equality
        return {n: c[c.index(sample[n])] for n, c in self.space.decisions.items()}

    # --- optuna.samplers.BaseSampler ---------------------------------------------------------
    def infer_relative_search_space(self, study: Study, trial: FrozenTrial
                                    ) -> dict[str, BaseDistribution]:
        return dict(self._dists) if searches(study, self.space, self._dists) else {}

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if not search_space or any(search_space.get(n) != d for n, d in self._dists.items()):
            return {}
        return self._next(study, trial)

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._fallback.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState,
                    values: list[float] | None) -> None:
        model = self._pending.pop(trial.number, None)
        if model is not None:
            ok = state == TrialState.COMPLETE and values
            self._bridge.finish(model, float(values[0]) if ok else None)

    def reseed_rng(self) -> None:
        self._fallback.reseed_rng()


def make(name: str, space: SearchSpace, seed: int = 0, fits: Fits | None = None,
         trials: int | None = None) -> NNISampler:
    if name not in STRATEGIES:
        raise UserError(f"unknown NNI strategy {name!r} (known: {', '.join(STRATEGIES)})")
    return NNISampler(name, space, seed, fits, trials)
