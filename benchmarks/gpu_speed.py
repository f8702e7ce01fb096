"""How fast the training loop runs on a GPU, and how many proxy candidates an hour it scores.

    python benchmarks/gpu_speed.py [--steps 30] [--workers 1 2 4] [--candidates 3]
        [--profile proxy-gpu] [--set KEY=VALUE] [--data PATH] [--out results/gpu]

Part one, training speed: for resnet20, resnet56, mobilenetv2, an airbench-like dense 3x3
net, the 600M-multiply-add net our CPU search found and three random `cells` genotypes,
the product's own training loop (`evaluators.train.train`: batched augmentation on the
device, channels_last, bf16 autocast, fused SGD; the weight average when ``--profile`` /
``--set`` have one) on random images at ``--batch``:
steady training images/s run eagerly and replayed from a CUDA graph (the default on a GPU;
the gain says how much of the eager step was kernel launches), and the graphed step's TFLOP/s
(6 x multiply-adds per image) against the bf16 matmul peak measured in the same run.

Part two, `--workers`: candidates an hour of the proxy profile on real CIFAR-10 with 1, 2,
4 worker processes sharing the GPU, each scoring the same ``--candidates`` `cells`
genotypes under the GPU search's base budget (a quarter of 600M multiply-adds).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from queue import Empty

import numpy as np
import torch

import evaluators
import searchspace
from evaluators.data import Split
from evaluators.train import train
from nas.report_table import table

sys.path.insert(0, str(Path(__file__).parent))
from fidelity import apply_sets  # noqa: E402
from train_throughput import peak_flops, random_cells  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BASE_MADDS = 150e6  # the GPU search's base budget at 600M multiply-adds (a quarter)
AIRBENCH_LIKE = {  # airbench94's shape: three conv-pool-conv blocks of 64, 256, 256 channels
    "name": "airbench-like", "stem": {"width": 32}, "head": {"pool": "max"},
    "stages": [{"width": w, "depth": 1, "stride": 2, "cell": {"nodes": [], "outputs": [0]},
                "reduce_cell": {"nodes": [
                    {"inputs": [0], "op": "conv", "width": 1.0, "act": "relu"},
                    {"inputs": [1], "op": "maxpool", "kernel": 2, "strided": True},
                    {"inputs": [2], "op": "conv", "width": 1.0, "act": "relu"}],
                    "outputs": [3]}} for w in (64, 256, 256)]}


def networks() -> list[tuple[str, searchspace.Genotype]]:
    nets = [(n, searchspace.zoo.get(n)) for n in ("resnet20", "resnet56", "mobilenetv2")]
    nets.append(("airbench-like", searchspace.Genotype.from_dict(AIRBENCH_LIKE)))
    nets.append(("600M (our CPU search's)",
                 searchspace.Genotype.from_yaml(ROOT / "results/cpu-search-600M/best.yaml")))
    return nets + random_cells(3, 20e6, 300e6)


def _random_split(n: int, device: torch.device) -> Split:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    y = rng.integers(0, 10, n).astype(np.int64)
    return Split(x, y, x[:512], y[:512], "val", "random")


def speed(g: searchspace.Genotype, recipe, steps: int, device: torch.device, graphs: bool
          ) -> float:
    """Steady training images/s (the epochs after the first)."""
    split = _random_split(recipe.batch_size * steps, device)
    torch.manual_seed(0)
    r = train(searchspace.build(g), split, recipe.replace(epochs=3), g.resolution, device,
              graphs=graphs)
    h = r.history
    return recipe.batch_size * steps * (len(h) - 1) / (h[-1].elapsed - h[0].elapsed)


def _worker(index: int, genotypes: list[dict], profile: str, sets: list[str], data: str,
            barrier, queue) -> None:
    torch.set_num_threads(1)
    ev = evaluators.make(profile, data=data)
    ev.recipe = apply_sets(ev.recipe, sets)
    ev.load()
    barrier.wait()
    for d in genotypes:
        r = ev.evaluate(searchspace.Genotype.from_dict(d))
        queue.put((index, r.status, r.accuracy, r.seconds, r.reason))


def workers_rate(n: int, genotypes: list[searchspace.Genotype], profile: str, sets: list[str],
                 data: str) -> dict:
    """``n`` processes each score ``genotypes``: candidates an hour, all together."""
    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(n + 1), ctx.Queue()
    plain = [g.to_dict() for g in genotypes]
    procs = [ctx.Process(target=_worker, args=(i, plain, profile, sets, data, barrier, queue))
             for i in range(n)]
    for p in procs:
        p.start()
    barrier.wait()
    start = time.perf_counter()
    done = []
    while len(done) < n * len(genotypes):
        try:
            done.append(queue.get(timeout=5))
        except Empty:
            dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            if dead:
                sys.exit(f"a worker failed (exit code {dead[0]}); its traceback is above")
    wall = time.perf_counter() - start
    for p in procs:
        p.join()
    ok = [d for d in done if d[1] == "ok"]
    return {"workers": n, "candidates": len(done), "ok": len(ok), "wall_s": wall,
            "per_hour": len(done) / wall * 3600,
            "seconds_each": statistics.mean(d[3] for d in done),
            "accuracy": statistics.mean(d[2] for d in ok) if ok else None,
            "failures": sorted({d[4] for d in done if d[1] != "ok"})}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=30, help="training steps an epoch (part one)")
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--nets", type=int, default=8, help="how many of the networks (part one)")
    p.add_argument("--workers", type=int, nargs="*", default=[1, 2, 4])
    p.add_argument("--candidates", type=int, default=3, help="per worker (part two)")
    p.add_argument("--profile", default="proxy-gpu", help="the recipe of both parts")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--data", default=os.environ.get("NAS_DATA"))
    p.add_argument("--out", type=Path, help="write gpu-speed.json here")
    args = p.parse_args()
    device = evaluators.train.pick_device()
    run: dict = {"device": torch.cuda.get_device_name(0) if device.type == "cuda" else
                 f"CPU ({platform.machine()})", "torch": torch.__version__,
                 "command": "python benchmarks/gpu_speed.py " + " ".join(sys.argv[1:])}
    t0 = time.perf_counter()
    if args.nets:
        peak = peak_flops(device)
        run["peak_tflops"] = peak / 1e12
        recipe = apply_sets(evaluators.recipe.load_profile(args.profile), args.set).replace(
            batch_size=args.batch, time_limit=0.0, device=str(device))
        rows, run["speed"] = [], []
        for name, g in networks()[:args.nets]:
            madds = searchspace.cost(g).madds
            cuda = device.type == "cuda"
            eager = speed(g, recipe, args.steps, device, False)
            graphed = speed(g, recipe, args.steps, device, True) if cuda else eager
            tflops = 6 * madds * graphed / 1e12
            run["speed"].append({"network": name, "madds": madds, "eager_images_per_s": eager,
                                 "images_per_s": graphed, "tflops": tflops})
            rows.append((name, f"{madds / 1e6:.0f}M", f"{eager:,.0f}", f"{graphed:,.0f}",
                         f"{graphed / eager:.2f}x", f"{tflops:.1f}",
                         f"{100 * tflops / run['peak_tflops']:.1f}%"))
            print(f"{time.perf_counter() - t0:.0f}s", rows[-1], file=sys.stderr, flush=True)
        print(table(("network", "madds", "eager img/s", "graphed img/s", "graph gain",
                     "TFLOP/s", "of peak"), rows, right={1, 2, 3, 4, 5, 6}))
        kind = "bf16" if device.type == "cuda" else "fp32"
        print(f"\n{run['device']}, batch {args.batch}, measured {kind} matmul peak "
              f"{run['peak_tflops']:.0f} TFLOP/s, torch {torch.__version__}\n")
    if args.workers:
        cands = [g for _, g in random_cells(args.candidates, 0, BASE_MADDS, 1000)]
        run["candidate_madds"] = [searchspace.cost(g).madds for g in cands]
        run["workers"] = [workers_rate(n, cands, args.profile, args.set, args.data)
                          for n in args.workers]
        for w in run["workers"]:
            print(w, file=sys.stderr, flush=True)
        name = " ".join([args.profile, *args.set])
        print(table((f"workers ({name})", "candidates", "wall s", "s each", "per hour",
                     "mean acc"),
                    [(w["workers"], w["candidates"], f"{w['wall_s']:.0f}",
                      f"{w['seconds_each']:.1f}", f"{w['per_hour']:,.0f}",
                      "-" if w["accuracy"] is None else f"{100 * w['accuracy']:.2f}%")
                     for w in run["workers"]], right={1, 2, 3, 4, 5}))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gpu-speed.json").write_text(json.dumps(run, indent=1))


if __name__ == "__main__":
    main()
