"""The `nas` command."""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import signal
import sys
from collections.abc import Sequence

from nas.errors import Interrupted, UserError, known_errors, raise_on_signals

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """argparse that exits 2 with one line (no usage dump) on a bad flag."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(message if self.prog == "nas" else f"{self.prog}: {message}")


def _cmd_info(args: argparse.Namespace) -> None:
    from nas.describe import info
    from nas.genotypes import resolve_genotype

    print(info(resolve_genotype(args.genotype), args.json, args.latency))


def _cmd_zoo(args: argparse.Namespace) -> None:
    from nas.describe import zoo_table

    print(zoo_table())


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="nas", description="Neural architecture search for CIFAR-style CNNs.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("info", help="layer table, multiply-adds and parameters of a genotype")
    s.add_argument("genotype", help="zoo name, YAML file or run folder")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.add_argument("--latency", metavar="TABLE", help="also its predicted latency: cpu, cuda "
                   "(this machine's table) or a `nas latency-table` file")
    s.set_defaults(run=_cmd_info)

    s = sub.add_parser("zoo", help="the hand-designed networks and their costs")
    s.set_defaults(run=_cmd_zoo)

    for module in _COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    return p


# Commands that live in their own modules (each has register(sub)), in the order `nas -h`
# lists them; imported only when the parser is built, so `nas zoo` stays light.
_COMMAND_MODULES = ("nas.search_cmd", "nas.worker_cmd", "nas.train_cmd", "nas.scale_cmd",
                    "nas.compare_cmd", "nas.latency_cmd")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run a subcommand; user errors become one line and exit code 2."""
    try:
        with raise_on_signals():
            args = _parser().parse_args(argv)
            args.run(args)
            sys.stdout.flush()  # a full disk under stdout fails here, not at exit as a traceback
    except UserError as exc:
        print(f"nas: error: {exc}", file=sys.stderr)
        return exc.code
    except known_errors() as exc:
        print(f"nas: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)  # Interrupted, or a training's Paused
        saved = f": {exc}" if not isinstance(exc, Interrupted) and str(exc) else ""
        print(f"nas: interrupted ({signal.Signals(signum).name}){saved}", file=sys.stderr)
        return 128 + signum
    except BrokenPipeError:
        _settle_stdout()
        return 0
    except OSError as exc:
        if exc.errno not in _DISK_FULL:
            raise
        _settle_stdout()
        print(f"nas: error: cannot write {exc.filename or 'the output'}: {exc.strerror}",
              file=sys.stderr)
        return 2
    return 0


_DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def _settle_stdout() -> None:
    """Flush stdout, or point it at /dev/null when it cannot take what it still holds, so that
    the interpreter's last flush at exit does not print a second error."""
    try:
        sys.stdout.flush()
    except OSError:
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):  # no real file behind stdout (a test's capture)
            pass


if __name__ == "__main__":
    sys.exit(main())
