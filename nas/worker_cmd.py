"""`nas worker`: join a search whose study lives in a shared database, from any machine."""

from __future__ import annotations

import argparse
import json
import sys

from nas.for_data import data_source
from nas.shared import join_search

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add `nas worker` to the CLI."""
    s = sub.add_parser("worker", help="add workers on this machine to a search in a database",
                       description="Train candidates for a search started elsewhere with "
                                   "`nas search --storage URL --study NAME`; its settings come "
                                   "from the study. Workers that stop sending heartbeats (a "
                                   "dead machine) have their trials queued again. The machine "
                                   "that started the search writes the run folder.")
    s.add_argument("--storage", required=True, help="the search's database URL, e.g. "
                                                    "postgresql://user@host/db")
    s.add_argument("--study", default="search", help="study name inside the storage "
                                                     "(default: search)")
    s.add_argument("--data", help="the search's images on this machine (default: the "
                                  "search's own --data)")
    s.add_argument("--resize", type=int, metavar="SIDE",
                   help="as the search's --resize (with --data)")
    s.add_argument("--workers", type=int, default=1, help="worker processes on this machine")
    s.add_argument("--json", action="store_true", help="print the study's counts as JSON")
    s.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> None:
    c = join_search(args.storage, args.study, data_source(args) if args.data else None,
                    args.workers)
    print(f"the search has {c['complete']} scored trial(s), {c['failed']} failed, "
          f"{c['running']} running elsewhere", file=sys.stderr)
    if args.json:
        print(json.dumps(c))
