"""The search's live line: trials done, the best score and its cost, one time estimate."""

from __future__ import annotations

import sys
import threading
import time

import optuna

from nas.config import SearchConfig
from nas.tally import best_trial, counts
from nas.trial import Status, records

__all__ = ["Monitor"]


class Monitor:
    """Redraws a tqdm bar every 2 s on a terminal; elsewhere, one plain line per change."""

    def __init__(self, study: optuna.Study, cfg: SearchConfig, enabled: bool) -> None:
        self.study, self.cfg, self.enabled = study, cfg, enabled
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._bar = None
        self._last = ""
        self._start = time.time()
        self._done_at_start: int | None = None

    def start(self) -> None:
        if not self.enabled:
            return
        if sys.stderr.isatty():
            from tqdm import tqdm

            # tqdm's own ETA is left out: it knows nothing of --time (see _eta)
            self._bar = tqdm(total=self.cfg.trials, desc=f"{self.cfg.strategy} search",
                             unit="trial", file=sys.stderr, dynamic_ncols=True,
                             bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}"
                                        "{postfix}]")
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(2.0):
            self._update()

    def _update(self) -> None:
        try:
            trials = records(self.study)
        except Exception:  # the storage is being written by a worker; try next tick
            return
        c = counts(self.study)
        done = c["complete"] + c["failed"] + c["rescored"]
        post = self._postfix(trials, c, done)
        if self._bar is None:  # not a terminal: one plain line whenever something changes
            line = (f"trial {done}/{self.cfg.trials or '-'}  " +
                    "  ".join(f"{k} {v}" for k, v in post.items() if k not in ("now", "eta")))
            if line != self._last:
                print(line, file=sys.stderr, flush=True)
                self._last = line
            return
        self._bar.n = done
        self._bar.set_postfix(post, refresh=False)
        self._bar.refresh()

    def _postfix(self, trials, c: dict[str, int], done: int) -> dict[str, str | int]:
        best = best_trial(self.study)
        running = [t for t in trials if t.status == Status.TRAINING and t.madds is not None]
        post: dict[str, str | int] = {
            "best": "-" if best is None else
            f"{100 * best.values[0]:.1f}% @ {best.madds / 1e6:.0f}M",
            "now": f"{running[-1].madds / 1e6:.0f}M" if running else "-",
            "rejected": c["rejected"], "failed": c["failed"]}
        eta = self._eta(done)
        if eta:
            post["eta"] = eta
        return post

    def _eta(self, done: int) -> str:
        """One estimate of the time left: the pace of this run's trials so far, capped by
        --time (and said so when the cap is what ends the search)."""
        if self._done_at_start is None:
            self._done_at_start = done  # a resumed run's earlier trials took no time here
        fresh = done - self._done_at_start
        elapsed = time.time() - self._start
        by_pace = None
        if self.cfg.trials and fresh > 0:
            by_pace = max(0.0, (self.cfg.trials - done) * elapsed / fresh)
        cap = max(0.0, self.cfg.started + self.cfg.time_s - time.time()) \
            if self.cfg.time_s else None
        if cap is not None and (by_pace is None or cap < by_pace):
            return f"<= {_duration(cap)} (--time)"
        return "" if by_pace is None else _duration(by_pace)

    def stop(self) -> None:
        if not self.enabled:
            return
        self._stop.set()
        self._thread.join(timeout=5)
        self._update()
        if self._bar is not None:
            self._bar.close()


def _duration(seconds: float) -> str:
    """45s, 12m, 2h05m."""
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    return f"{seconds // 3600:.0f}h{seconds % 3600 / 60:02.0f}m"
