"""proxy-cpu end to end: resnet20's validation accuracy and wall time on 2 cores (<= 60 s).

Runs `nas train resnet20 --profile proxy-cpu` end to end (process start, cached data,
training, scoring) over a few seeds and prints wall time and accuracy.

    python benchmarks/proxy_cpu.py --data ../shared/data/cifar10-jpeg.tar.gz [--seeds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

from nas.report_table import table


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", default=None)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--genotype", default="resnet20")
    args = p.parse_args()
    cmd = [sys.executable, "-m", "nas.cli", "train", args.genotype, "--profile", "proxy-cpu",
           "--json"] + (["--data", args.data] if args.data else [])
    subprocess.run(cmd + ["--epochs", "0.01"], check=True, capture_output=True)  # warm cache
    rows, walls, accs = [], [], []
    for seed in range(args.seeds):
        start = time.perf_counter()
        r = subprocess.run(cmd + ["--seed", str(seed)], check=True, capture_output=True,
                           text=True)
        wall = time.perf_counter() - start
        out = json.loads(r.stdout.strip().splitlines()[-1])
        walls.append(wall)
        accs.append(out["val_accuracy"])
        rows.append((seed, f"{100 * out['val_accuracy']:.2f}%", f"{out['seconds']:.1f}",
                     f"{wall:.1f}", f"{out['images_per_s']:,.0f}"))
    print(table(("seed", "val acc", "train s", "wall s", "img/s"), rows, right={1, 2, 3, 4}))
    sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
    print(f"\n{args.genotype} proxy-cpu: {100 * statistics.mean(accs):.2f}% +- {100 * sd:.2f} "
          f"validation accuracy, {statistics.mean(walls):.1f} s wall (target: <= 60 s)")


if __name__ == "__main__":
    main()
