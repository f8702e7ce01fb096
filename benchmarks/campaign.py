"""The 600M experiment on a GPU, in the pieces that one lent device call allows.

    python benchmarks/campaign.py --plan                        # what is left, minutes per piece
    python benchmarks/campaign.py --minutes 8 [--restore ARCHIVE]   # on the GPU machine
    python benchmarks/campaign.py --restore FILES/campaign.tar.gz --minutes 0   # back here
    python benchmarks/campaign.py --dry-run --minutes 2 --out /tmp/c    # the CPU rehearsal

Each piece is a `nas` command that resumes when run again (benchmarks/campaign_plan.py). Given
M minutes, the campaign runs the next pieces that fit, sends SIGTERM to the one in flight
before the deadline (it saves its state and exits), writes the report of what is done and
what is missing, and packs everything the next call needs into one archive under $OUT. Its
state, the run folders and any half-finished training live in --out; commit that folder
after a call. How to spend a lease on it: the README's GPU section.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import campaign_plan as plan
import campaign_report as report

ROOT = Path(__file__).resolve().parents[1]
STOP_GRACE_S = 120.0  # after SIGTERM, how long a piece may take to save and write its outputs
DEFAULT_OUT = "results/cifar10-600M"


def main(argv: list[str] | None = None) -> int:
    started = time.time()  # the call's minutes count from here, start-up included
    args = _parser().parse_args(argv)
    out = Path(args.out or ("runs/campaign-dry-run" if args.dry_run else DEFAULT_OUT))
    try:
        if args.minutes > 0 and not (args.dry_run or args.plan):
            _need_gpu()
        if args.restore:
            report.unpack(Path(args.restore), out)
        profiles = out / "work" / "profiles"
        report.check_setup(out, plan.DRY_RUN if args.dry_run else plan.REAL)
        setup = plan.dry_run_setup(profiles) if args.dry_run else plan.real_setup(
            profiles, Path(args.probe) if args.probe else None, write=not args.plan)
        state = report.load_state(out, setup.name)
        work = out / "work"
        pieces = plan.pieces(setup, work, args.data)
        rates = plan.Rates()
        rates.learn(work, [p.network for p in pieces if p.network is not None])
        if args.plan:
            print(report.plan_table(setup, pieces, rates, state))
            return 0
        pack = Path(os.environ["OUT"]) if os.environ.get("OUT") and args.minutes > 0 else None
        call = Call(out, setup, lambda: plan.pieces(setup, work, args.data), rates, state,
                    started, args.minutes, args.parallel, pack)
        call.run()
        call.save()
    except (report.CampaignError, ValueError, OSError) as exc:
        print(f"campaign: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("campaign: interrupted before it started a piece", file=sys.stderr)
        return 130
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=8.0,
                   help="device minutes this call may use, packing included (default: 8; "
                        "0 runs nothing: restore and report)")
    p.add_argument("--out", help=f"the campaign's folder (default: {DEFAULT_OUT}; with "
                                 "--dry-run, runs/campaign-dry-run)")
    p.add_argument("--restore", help="an archive a previous call packed (campaign.tar.gz, or "
                                     "its first part .00): unpacked into --out first")
    p.add_argument("--plan", action="store_true", help="print the pieces left and their "
                                                       "predicted minutes; run nothing")
    p.add_argument("--dry-run", action="store_true",
                   help="the whole campaign on the CPU with tiny recipes (a rehearsal)")
    p.add_argument("--data", help="CIFAR-10 source (default: $NAS_DATA, the cache)")
    p.add_argument("--probe", help="gpu_probe.py's probe.json: its fastest layout and "
                                   "compilation go into the campaign's recipes (first call)")
    p.add_argument("--parallel", type=int, default=1,
                   help="pieces sharing the device at once (default 1: unmeasured on a GPU; "
                        "on a 2-core CPU slower, and it disturbs the CPU latencies that "
                        "`nas compare` measures meanwhile)")
    return p


def _need_gpu() -> None:
    import torch

    if not torch.cuda.is_available():
        raise report.CampaignError("no GPU here: --plan shows what a call would run, "
                                   "--dry-run rehearses the campaign on the CPU")


class Call:
    """One device call's share of the campaign: pieces run until the deadline."""

    def __init__(self, out: Path, setup: plan.Setup, make_pieces, rates: plan.Rates,
                 state: dict, started: float, minutes: float, parallel: int,
                 pack: Path | None) -> None:
        self.out, self.setup, self.rates, self.state = out, setup, rates, state
        self.make_pieces = make_pieces  # again once the search has found its network
        self.pieces: list[plan.Piece] = make_pieces()
        self.pack = pack  # where the archive goes ($OUT), after each piece and at the end
        self.start = started
        self.final = self.start + 60 * minutes - setup.margin_s  # all stopped: state, archive
        self.end = self.final - setup.report_s  # the pieces stop; then the report runs
        self.parallel = max(1, parallel)
        self.reporting = False
        self.running: dict[str, tuple[subprocess.Popen, float, threading.Thread]] = {}
        self.record = {"started": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self.start)),
                       "minutes": minutes, "machine": report.machine(), "ran": []}
        self.stop = False

    def run(self) -> None:
        if self.end <= self.start:
            return
        self.state["calls"].append(self.record)
        before = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            self._loop()
            trained = any(self.state["pieces"].get(p.name, {}).get("done")
                          for p in self.pieces if p.kind == "train")
            stale = not self.state["pieces"].get("report", {}).get("done")
            if trained and stale and not self.stop:
                self._run_report()
        finally:
            for s, h in before.items():
                signal.signal(s, h)
            self.record["seconds"] = round(time.time() - self.start, 1)
            report.save_state(self.out, self.state)

    def save(self) -> None:
        """The state, the report, and (on a device call, with no piece running) the archive
        the next call needs, without the states too big to carry."""
        packing = self.pack is not None and not self.running
        if packing:
            self._shed_states()
        report.save_state(self.out, self.state)
        report.write(self.out, self.setup, self.make_pieces(), self.rates, self.state)
        if packing:
            report.pack(self.out, self.pack)

    def _shed_states(self) -> None:
        """Keep the smallest half-finished training states up to CARRY_MB in all; delete the
        others (they travel in the tree, whose size the device limits), and the time their
        pieces spent, which is lost: those trainings start again."""
        states = sorted(self.out.rglob("*.state"), key=lambda f: f.stat().st_size)
        total = 0.0
        for f in states:
            total += f.stat().st_size / 1e6
            if total <= report.CARRY_MB:
                continue
            _say(f"{f.name}: {f.stat().st_size / 1e6:.0f} MB, over what a call carries "
                 f"({report.CARRY_MB} MB in all): deleted; that training starts again")
            for p in self.pieces:
                if p.network is not None and f.name.startswith(p.network.key()) and \
                        re.search(rf"-s{p.name.rsplit(' ', 1)[-1]}-", f.name):
                    self.state["pieces"].get(p.name, {}).pop("seconds", None)
            f.unlink()

    def _on_signal(self, signum: int, frame) -> None:
        self.stop = True  # the pieces in flight are stopped cleanly by the loop

    def _loop(self) -> None:
        while True:
            self._reap()
            if self.stop or time.time() >= self.end:
                self._stop_all()
                return
            if len(self.running) < self.parallel:
                piece = self._next()
                if piece is not None:
                    self._launch(piece)
                    continue
                if not self.running:
                    return
            time.sleep(0.5)

    def _next(self) -> plan.Piece | None:
        """The first piece not done, not running, whose needs are done, that fits the time
        left: it finishes before the deadline, or its state is small enough to carry."""
        left = self.end - time.time()
        if left < self.setup.min_start_s or self.reporting:
            return None
        pieces = self.state["pieces"]
        for p in self.pieces:
            info = pieces.setdefault(p.name, {})
            if info.get("done") or p.kind == "report" or p.name in self.running:
                continue
            if not all(pieces.get(n, {}).get("done") for n in p.needs):
                continue
            if info.get("failed_call") == len(self.state["calls"]):
                continue  # failed in this call: the next call tries again
            need = plan.predict(self.setup, p, self.rates) - info.get("seconds", 0.0)
            parallel_ok = not self.running or need < left  # a second one must finish
            carry = p.network is None or plan.state_mb(p.network) <= report.CARRY_MB
            if parallel_ok and (need < left or carry):
                return p
        return None

    def _piece(self, name: str) -> plan.Piece:
        return next(p for p in self.pieces if p.name == name)

    def _launch(self, piece: plan.Piece) -> None:
        info = self.state["pieces"].setdefault(piece.name, {})
        argv = piece.again if piece.resumes_if and piece.resumes_if.is_file() else piece.first
        info["runs"] = info.get("runs", 0) + 1
        info["command"] = "nas " + " ".join(_quote(a) for a in piece.first)
        self.record["ran"].append(piece.name)
        self.running[piece.name] = (*_spawn(argv, report.log_path(self.out, piece.name),
                                            piece.name), time.time())

    def _reap(self) -> None:
        for name, (proc, copier, began) in list(self.running.items()):
            code = proc.poll()
            if code is None:
                continue
            copier.join(timeout=10)  # its last lines in the log before the log is read
            del self.running[name]
            info = self.state["pieces"][name]
            info["seconds"] = round(info.get("seconds", 0.0) + time.time() - began, 1)
            info["exit"] = code
            if code == 0:
                info["done"] = True
                info.pop("error", None)
                if name != "report":  # a new result: the report is out of date
                    self.state["pieces"].setdefault("report", {})["done"] = False
                self.pieces = self.make_pieces()
                self.rates.learn(self.out / "work", [p.network for p in self.pieces
                                                     if p.network is not None])
            elif code > 0 and code not in (128 + signal.SIGTERM, 128 + signal.SIGINT):
                # (a negative code: killed by a signal before its handlers were up, or past
                # its grace: stopped, not failed)
                info["failed_call"] = len(self.state["calls"])
                info["error"] = report.last_error(report.log_path(self.out, name))
            _say(f"{name}: " + ("done" if code == 0 else f"exit {code}") +
                 f" after {time.time() - began:.0f}s")
            self.save()  # a call killed past its time still brings back what finished

    def _stop_all(self) -> None:
        for name, (proc, _, _) in self.running.items():
            _say(f"{name}: stopping it (SIGTERM): its state is saved for the next call")
            proc.send_signal(signal.SIGTERM)
        deadline = min(time.time() + STOP_GRACE_S, self.final)
        while self.running and time.time() < deadline:
            self._reap()
            time.sleep(0.2)
        for name, (proc, _, _) in list(self.running.items()):
            proc.kill()  # past its grace: what it did since its last save is lost
            proc.wait()
        self._reap()

    def _run_report(self) -> None:
        """`nas compare --report-only`: the table of what is trained, in the time kept for it
        (the next call writes it when this one has not that time left)."""
        if self.final - time.time() < self.setup.report_s / 2:
            return
        self.reporting, self.end = True, self.final
        self._launch(self._piece("report"))
        self._loop()


def _spawn(argv: tuple[str, ...], log: Path, name: str
           ) -> tuple[subprocess.Popen, threading.Thread]:
    """``nas argv`` as a child, and the thread copying its output to ``log`` and, prefixed,
    to stderr."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])), PYTHONUNBUFFERED="1")
    _say(f"{name}: nas {' '.join(_quote(a) for a in argv)}")
    proc = subprocess.Popen([sys.executable, "-m", "nas.cli", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)  # our Ctrl-C is ours to pass on
    log.parent.mkdir(parents=True, exist_ok=True)
    copier = threading.Thread(target=_copy, args=(proc, log, name), daemon=True)
    copier.start()
    return proc, copier


def _copy(proc: subprocess.Popen, log: Path, name: str) -> None:
    with log.open("a") as f:
        for line in proc.stdout:
            f.write(line)
            f.flush()
            print(f"  [{name}] {line.rstrip()}", file=sys.stderr, flush=True)


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


def _say(line: str) -> None:
    print(f"campaign: {line}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
