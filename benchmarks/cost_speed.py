"""How long the analytic counter takes per genotype (target: 1 ms or less), and how long
PyTorch's FlopCounterMode takes on the same nets for comparison.

    python benchmarks/cost_speed.py [--n 200]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

import searchspace
from nas.report_table import table


def _time(fn, repeat: int) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat * 1e3


def _flop_counter_ms(g: searchspace.Genotype) -> float:
    def run() -> None:
        with torch.device("meta"):
            model = searchspace.build(g)
            x = torch.empty(1, 3, g.resolution, g.resolution)
        with FlopCounterMode(display=False):
            model(x)
    return _time(run, 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=200, help="random genotypes of the cells space")
    args = p.parse_args()
    space = searchspace.load_space("cells")
    randoms = [space.sample(seed=s) for s in range(args.n)]
    rows = []
    for name in ("resnet20", "resnet110", "densenet100", "efficientnet_b0"):
        g = searchspace.zoo.get(name)
        rows.append((name, f"{_time(lambda g=g: searchspace.cost(g), 50):.3f}",
                     f"{_flop_counter_ms(g):.1f}"))
    per = [_time(lambda g=g: searchspace.cost(g), 5) for g in randoms]
    decode = _time(lambda: [space.sample(seed=s) for s in range(20)], 1) / 20
    fc = statistics.median(_flop_counter_ms(g) for g in randoms[:10])
    rows.append((f"cells x{args.n} (median)", f"{statistics.median(per):.3f}", f"{fc:.1f}"))
    rows.append((f"cells x{args.n} (max)", f"{max(per):.3f}", ""))
    rows.append(("cells: decode + validate", f"{decode:.3f}", ""))
    print(table(("genotype", "cost() ms", "FlopCounterMode ms"), rows, right={1, 2}))
    print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} threads")


if __name__ == "__main__":
    main()
