"""Fuzz the genotype loader: real genotypes (the zoo, samples of both spaces) with random damage,
as plain data and as YAML text; each must load as a valid genotype under the cost ceiling or
be refused with GenotypeError. The property of ``tests/test_bad_input.py``, at 10,000
examples, each under a time limit.

    python benchmarks/fuzz_genotypes.py [--examples 10000] [--timeout 5] [--seed 0]

Needs the test extra (hypothesis). Prints: examples, valid, refused, tracebacks (any other
exception), hangs (over the per-example limit) and seconds.
"""

from __future__ import annotations

import argparse
import collections
import signal
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from bad_input_strategies import check_genotype_input, genotype_inputs  # noqa: E402
from hypothesis import HealthCheck, given, seed, settings  # noqa: E402

from nas.report_table import table  # noqa: E402


class _Hang(BaseException):
    """The per-example time limit passed (not an Exception: the loader cannot swallow it)."""


def _alarm(signum, frame) -> None:
    raise _Hang


def run(examples: int, timeout: float, rng_seed: int) -> tuple[collections.Counter, list[str],
                                                                float]:
    """(outcome counts, the first tracebacks, seconds) over ``examples`` damaged genotypes."""
    counts: collections.Counter = collections.Counter()
    failures: list[str] = []
    signal.signal(signal.SIGALRM, _alarm)

    @seed(rng_seed)
    @settings(max_examples=examples, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck))
    @given(genotype_inputs)
    def one(case) -> None:
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            counts[check_genotype_input(*case)] += 1
        except _Hang:
            counts["hang"] += 1
        except Exception:  # the property failed: record it, keep fuzzing
            counts["traceback"] += 1
            if len(failures) < 5:
                failures.append(f"{case!r:.300}\n{traceback.format_exc()}")
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)

    start = time.perf_counter()
    one()
    return counts, failures, time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--examples", type=int, default=10_000, help="damaged genotypes to try")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds allowed per example")
    p.add_argument("--seed", type=int, default=0, help="Hypothesis's seed")
    args = p.parse_args()
    counts, failures, seconds = run(args.examples, args.timeout, args.seed)
    total = sum(counts.values())
    print(table(("examples", "valid", "refused", "tracebacks", "hangs", "seconds"),
                [(f"{total:,}", f"{counts['valid']:,}", f"{counts['refused']:,}",
                  counts["traceback"], counts["hang"], f"{seconds:.1f}")],
                right={0, 1, 2, 3, 4, 5}))
    for f in failures:
        print("\n" + f, file=sys.stderr)
    sys.exit(1 if counts["traceback"] or counts["hang"] else 0)


if __name__ == "__main__":
    main()
