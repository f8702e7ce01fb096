"""Everything checked before a search starts, in one line each; nothing is changed.

``check`` returns what it found (the space, the loaded evaluator, the screen, a database
storage already opened) or raises ``UserError``: a start that fails it
leaves no run folder and no trial.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

import evaluators
import searchspace
from nas.config import SearchConfig
from nas.errors import UserError
from nas.screen import parse_by, zero_cost_screen
from nas.storage import check_storage_url, is_database, open_storage
from nas.strategies import NAMES, NNI_NAMES, Screen, require_nni

__all__ = ["Checked", "check", "make_evaluator", "make_screen", "max_workers",
           "WORKER_MEMORY"]

WORKER_MEMORY = 2 << 30  # bytes a worker process may hold: torch, CIFAR-10 and a candidate


@dataclass(frozen=True)
class Checked:
    """What a search that passed its checks runs with."""

    space: searchspace.SearchSpace
    evaluator: evaluators.Evaluator  # loaded: its data or table read
    screen: Screen | None
    storage: object | None = None  # a database storage, opened (a journal opens later)
    shape: list[int] | None = None  # [classes, side] of the evaluator's images, if it has any


def max_workers() -> int:
    """Worker processes this machine can hold: its memory over WORKER_MEMORY each."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not a POSIX system: assume 16 GiB
        memory = 16 << 30
    return max(1, memory // WORKER_MEMORY)


def make_evaluator(cfg: SearchConfig) -> evaluators.Evaluator:
    """The evaluator ``cfg`` names, at the base budget."""
    return evaluators.make(cfg.evaluator, data=cfg.data, limits=cfg.base_limits)


def make_screen(cfg: SearchConfig, space: searchspace.SearchSpace,
                ev: evaluators.Evaluator) -> Screen | None:
    """The zero-cost screen of the run (None without --screen): its images are the proxy's
    CIFAR-10 source, or $NAS_DATA / the cache when a table or a function scores the search."""
    data = cfg.data if isinstance(ev, evaluators.ProxyEvaluator) else None
    return zero_cost_screen(space, cfg.screen, cfg.screen_by, data)


def check(cfg: SearchConfig, ev: evaluators.Evaluator | None = None,
          space: searchspace.SearchSpace | None = None,
          warn: Callable[[str], None] = lambda line: print(f"warning: {line}", file=sys.stderr)
          ) -> Checked:
    """Fail fast, in one line, on anything wrong before any work starts. ``ev``, ``space``:
    Python objects, when ``cfg`` cannot rebuild them from its names. What the evaluator
    cannot tell apart in the space goes to ``warn`` at once (also before a refusal)."""
    if cfg.strategy not in NAMES:
        raise UserError(f"unknown strategy {cfg.strategy!r} (known: {', '.join(NAMES)})")
    if cfg.budget:
        from nas.budget import parse_budget

        parse_budget(cfg.budget)
    elif ev is None and cfg.evaluator not in evaluators.TABLES:
        raise UserError("a budget is required (e.g. 600M-madds)")
    space = space or searchspace.load_space(cfg.space)
    ev = ev or make_evaluator(cfg)
    for line in ev.warnings(space):
        warn(line)
    _check_numbers(cfg)
    _check_nni(cfg)
    screen = make_screen(cfg, space, ev)  # a bad --screen or --screen-by fails here
    if screen is not None and set(parse_by(cfg.screen_by)) - {"madds", "params"}:
        screen.pick.zc.load()  # its images, with a clear error if they are missing
    if cfg.storage:
        check_storage_url(cfg.storage)
    _check_template(cfg, space, ev)
    ev.load()  # the data or table, here, with a clear error if it is missing
    space, shape = _for_data(cfg, space, ev)
    if screen is not None:  # checked above; built again for the networks of these images
        screen = make_screen(cfg, space, ev)
    _check_fit(cfg, space)  # after the data: the images' size sets the networks' cost
    storage = _database(cfg)  # last: a refused start leaves no tables behind
    return Checked(space, ev, screen, storage, shape)


def _for_data(cfg: SearchConfig, space: searchspace.SearchSpace, ev: evaluators.Evaluator
              ) -> tuple[searchspace.SearchSpace, list[int] | None]:
    """The space built for the evaluator's images (their classes and side), and that shape;
    a run resumed (or joined) with images of another shape is refused."""
    info = ev.data_info()
    if info is None or ev.template is not None:
        return space, None
    shape = [info.num_classes, info.side]
    if cfg.shape and list(cfg.shape) != shape:
        raise UserError(f"this run searched {cfg.shape[0]}-class {cfg.shape[1]}x{cfg.shape[1]} "
                        f"images, but {info.source} has {info.words()}: continue it with the "
                        "images it searched")
    try:
        return space.for_data(*shape), shape
    except searchspace.SpaceError as exc:
        raise UserError(str(exc)) from None


def _check_numbers(cfg: SearchConfig) -> None:
    if cfg.trials is not None and cfg.trials < 1:
        raise UserError("--trials must be at least 1")
    if cfg.rescore < 0 or cfg.rescore == 1 or cfg.rescore_seeds < 1:
        raise UserError("--rescore K trains the K best networks again: K is 0 (off) or at "
                        "least 2")
    if cfg.trials is not None and cfg.trials - cfg.plan.trainings < cfg.rescore:
        raise UserError(f"--rescore {cfg.rescore} takes {cfg.plan.trainings} of the "
                        f"{cfg.trials} trials, leaving too few to search: give more --trials "
                        "or a smaller --rescore")
    if cfg.workers < 1:
        raise UserError("--workers must be at least 1")
    if cfg.workers > max_workers():
        raise UserError(f"--workers {cfg.workers} is more than this machine can hold: at most "
                        f"{max_workers()} ({WORKER_MEMORY >> 30} GiB of memory each)")


def _check_nni(cfg: SearchConfig) -> None:
    if cfg.strategy not in NNI_NAMES:
        return
    if cfg.workers > 1:
        raise UserError(f"{cfg.strategy}: NNI's strategies propose from one process; "
                        "use --workers 1")
    if cfg.screen > 1:
        raise UserError("--screen works with this project's strategies, not NNI's")
    require_nni()  # not installed: one line that says how


def _check_template(cfg: SearchConfig, space: searchspace.SearchSpace,
                    ev: evaluators.Evaluator) -> None:
    """The evaluator scores this space's networks; a latency budget's table opens."""
    if ev.template is not None and (space.template != ev.template or (
            space.resolution, space.num_classes) != (32, 10)):
        raise UserError(f"{ev.name} scores only the networks of its benchmark (32x32, 10 "
                        f"classes): use --space {ev.template}")
    if cfg.base_limits.latency_ms is not None:
        from nas.latency_cmd import prepare

        prepare(cfg.base_limits.latency_on)  # this machine's table measured now, or refused


def _check_fit(cfg: SearchConfig, space: searchspace.SearchSpace) -> None:
    """The space's cheapest network fits the base budget."""
    limits = cfg.base_limits
    if not limits:
        return
    counted = dataclasses.replace(limits, latency_ms=None)  # latency: the smallest network's
    cheapest = limits.cost(space.cheapest(lambda g: counted.use(searchspace.cost(g)))
                           if counted else space.cheapest())
    over = [(k, getattr(cheapest, k), v) for k, v in limits.items() if getattr(cheapest, k) > v]
    if over:
        k, value, limit = over[0]
        share = cfg.base_fraction ** (0.5 if k == "latency_ms" else 1.0)
        part = ("" if cfg.base_fraction == 1.0 or not cfg.scale else
                f" (the base is searched at 1/{round(1 / share)} of "
                f"{cfg.budget}; --no-scale searches at the full budget)")
        amount = (f"{value:.3g} ms predicted latency, over the budget of {limit:.3g} ms"
                  if k == "latency_ms" else
                  f"{value / 1e6:.2f}M {k}, over the budget of {limit / 1e6:.2f}M")
        raise UserError(f"no network of the {space.name} space fits: its cheapest has "
                        f"{amount}{part}")


def _database(cfg: SearchConfig):
    """A database server's storage, opened now: a missing driver or a server that does not
    answer fails before the run folder exists. SQLite's file may live in the run folder,
    made later: only its driver is checked."""
    if not cfg.storage or not is_database(cfg.storage):
        return None
    if cfg.storage.startswith("sqlite"):
        try:
            import sqlalchemy  # noqa: F401
        except ImportError as exc:
            raise UserError(f"storage sqlite: a driver is missing ({exc})") from None
        return None
    return open_storage(cfg.storage)
