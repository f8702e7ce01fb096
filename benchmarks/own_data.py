"""A user's own images, measured: the memory of loading a big dataset, and a search on a
dataset that is not CIFAR-10's 10 classes against the zoo at equal multiply-adds.

Both datasets are made from the shared CIFAR-10 JPEG copy (upscaled, so the images are
bigger than CIFAR's own) in ``--work``, never in the repository.

    python benchmarks/own_data.py memory [--images 20000] [--side 96] [--before REV]
    python benchmarks/own_data.py search [--side 64] [--budget 160M-madds] [--trials 12]
                                         [--seeds 1 2] [--resize SIDE]

``memory`` decodes the dataset into a fresh cache and loads it as a search and as a final
training do, each in its own process, and prints the peak resident memory of each (with
``--before REV``, the same with ``evaluators/data.py`` of that git revision). ``search`` runs
``nas search`` on a 5-class subset with each seed; the search itself compares its winner with
the baselines compound-scaled to the same base budget, by the same proxy, on the validation
images no trial was scored on. Results go to ``results/own-data/``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"
FIVE = ("airplane", "automobile", "bird", "cat", "deer")


def make_dataset(root: Path, classes: tuple[str, ...] | None, train: int, test: int,
                 side: int) -> Path:
    """``train`` and ``test`` images a class (all classes when None) of the shared copy,
    upscaled to ``side`` (bicubic) and saved as JPEG (quality 90) under root/train|test/."""
    from PIL import Image

    if (root / "done").is_file():
        return root
    seen: dict[tuple[str, str], int] = {}
    with tarfile.open(SHARED) as t:
        for m in t:
            parts = Path(m.name).parts
            if not m.isfile() or (classes and parts[-2] not in classes):
                continue
            key = (parts[-3], parts[-2])
            seen[key] = seen.get(key, 0) + 1
            if seen[key] > (train if parts[-3] == "train" else test):
                continue
            img = Image.open(io.BytesIO(t.extractfile(m).read()))
            folder = root / parts[-3] / parts[-2]
            folder.mkdir(parents=True, exist_ok=True)
            img.resize((side, side), Image.Resampling.BICUBIC).save(
                folder / Path(m.name).name, quality=90)
    (root / "done").write_text("")
    return root


# --- memory -----------------------------------------------------------------------------

_PROBE = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
module = __import__(sys.argv[2], fromlist=["load_search"])
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
before = status("VmRSS")
start = time.perf_counter()
getattr(module, sys.argv[3])(sys.argv[4])
print(json.dumps({"rss_before": before, "peak": status("VmHWM"), "rss_after": status("VmRSS"),
                  "seconds": time.perf_counter() - start}))
"""


def _probe(module_dir: Path, module: str, what: str, data: Path, cache: Path) -> dict:
    env = {**os.environ, "NAS_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", _PROBE, str(module_dir), module, what, str(data)],
                       capture_output=True, text=True, env=env, check=False)
    if r.returncode:
        sys.exit(f"{module}.{what} failed: {r.stderr.strip().splitlines()[-1]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def memory(args) -> dict:
    per_class = args.images // 10
    data = make_dataset(Path(args.work) / f"all-{args.side}", None, per_class,
                        per_class // 5, args.side)
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                         capture_output=True, text=True, check=False).stdout.strip()
    versions = [(f"{rev or 'this tree'} (this change)", ROOT, "evaluators.data")]
    if args.before:
        old = Path(args.work) / "before"
        old.mkdir(parents=True, exist_ok=True)
        text = subprocess.run(["git", "show", f"{args.before}:evaluators/data.py"], cwd=ROOT,
                              capture_output=True, text=True, check=True).stdout
        (old / "data_before.py").write_text(text)
        versions.append((f"evaluators/data.py of {args.before} (before this change)", old,
                         "data_before"))
    rows = []
    for label, folder, module in versions:
        cache = Path(args.work) / f"cache-{module}-{time.time_ns()}"
        for what, step in (("load_search", "first load: decode into the cache, then the "
                                            "search's split"),
                           ("load_search", "search split from the cache"),
                           ("load_final", "final split from the cache")):
            got = _probe(folder, module, what, data, cache)
            rows.append({"code": label, "step": step, **got,
                         "added": got["peak"] - got["rss_before"]})
            print(f"{label:>28}  {step:<60} peak {got['peak'] / 2**30:.2f} GiB "
                  f"(+{rows[-1]['added'] / 2**30:.2f} over the imports) {got['seconds']:.1f}s",
                  file=sys.stderr, flush=True)
        rows[-1]["cache_bytes"] = sum(p.stat().st_size for p in cache.rglob("*") if p.is_file())
    n = per_class * 10
    return {"images": n, "test_images": n // 5, "side": args.side,
            "array_bytes": n * 3 * args.side ** 2, "rows": rows}


def memory_text(r: dict) -> str:
    lines = [f"# Loading {r['images']:,} training images of {r['side']}x{r['side']} "
             f"(and {r['test_images']:,} test images)", "",
             f"Made from the shared CIFAR-10 JPEG copy, upscaled (bicubic, JPEG quality 90). "
             f"The training images as uint8 arrays: {r['array_bytes'] / 2**30:.2f} GiB. "
             "Each step in a fresh process; peak resident memory (VmHWM) and what the step "
             "added over the imports (torch and numpy).", "",
             "| code | step | peak (GiB) | added (GiB) | seconds |", "|---|---|---:|---:|---:|"]
    for row in r["rows"]:
        lines.append(f"| {row['code']} | {row['step']} | {row['peak'] / 2**30:.2f} | "
                     f"{row['added'] / 2**30:.2f} | {row['seconds']:.1f} |")
    return "\n".join(lines) + "\n"


# --- search -------------------------------------------------------------------------------


def search(args) -> dict:
    import nas

    from evaluators.data import with_resize

    data = make_dataset(Path(args.work) / f"five-{args.side}", FIVE, 5000, 1000, args.side)
    data = with_resize(data, args.resize)
    runs = []
    for seed in args.seeds:
        out = Path(args.work) / f"search-{_name(args)}-seed{seed}"
        print(f"search under {args.budget}, seed {seed} -> {out}", file=sys.stderr, flush=True)
        r = nas.search("cells", "proxy-cpu", args.budget, trials=args.trials, seed=seed,
                       out=out, data=str(data), baselines=args.baselines.split(","),
                       scale=True, base_fraction=1 / 16,  # as `nas search` on a CPU
                       progress=True, resume=(out / "summary.json").exists())
        runs.append(_run_record(out, seed, r.score))
    return {"budget": args.budget, "side": args.side, "classes": list(FIVE),
            "trials": args.trials, "resize": args.resize, "runs": runs}


def _run_record(out: Path, seed: int, score: float) -> dict:
    """What a run folder says of its search and its comparison."""
    from nas.run_folder import environment

    rows = json.loads((out / "compare" / "results.json").read_text())["rows"]
    summary = json.loads((out / "summary.json").read_text())
    return {"seed": seed, "search_score": score, "trials": summary["trials"],
            "search_min": round(summary["seconds"] / 60, 1), "environment": environment(),
            "rows": [{k: row[k] for k in ("name", "madds", "params", "resolution", "accuracy",
                                          "discovered")} for row in rows]}


def _name(args) -> str:
    return f"{args.side}" + (f"-resize{args.resize}" if args.resize else "")


def search_text(r: dict) -> str:
    lines = [f"# Searched against the zoo on 5 CIFAR-10 classes at {r['side']}x{r['side']}",
             "", f"`nas search --budget {r['budget']} --data five-{r['side']}/ --trials "
             f"{r['trials']}" + (f" --resize {r['resize']}" if r.get("resize") else "")
             + "` (proxy-cpu, the CPU defaults: the base searched at 1/16 of the "
             f"budget) on {', '.join(r['classes'])}: 25,000 training images upscaled to "
             f"{r['side']}x{r['side']}. Each baseline compound-scaled to the base budget, "
             "trained by the same proxy, and every network scored on the validation images "
             "no trial was scored on (one training each).", ""]
    lines += [f"- seed {run['seed']}: {run['trials']['complete']} trials scored, "
              f"{run['trials']['failed']} failed (too slow for proxy-cpu's 120 s guard); "
              f"search {run['search_min']} min; {run['environment']}" for run in r["runs"]]
    lines += ["", "| seed | network | resolution | multiply-adds | parameters | held-out "
              "acc (%) |", "|---:|---|---:|---:|---:|---:|"]
    for run in r["runs"]:
        for row in sorted(run["rows"], key=lambda x: -x["accuracy"]):
            name = f"**{row['name']}**" if row["discovered"] else row["name"]
            lines.append(f"| {run['seed']} | {name} | {row['resolution']} | "
                         f"{row['madds'] / 1e6:.2f}M | {row['params']:,} | "
                         f"{100 * row['accuracy']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    m = sub.add_parser("memory")
    m.add_argument("--images", type=int, default=20_000)
    m.add_argument("--side", type=int, default=96)
    m.add_argument("--before", help="a git revision whose evaluators/data.py is measured too")
    s = sub.add_parser("search")
    s.add_argument("--side", type=int, default=64)
    s.add_argument("--budget", default="160M-madds")
    s.add_argument("--trials", type=int, default=12)
    s.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    s.add_argument("--resize", type=int, help="search the images resized to this side")
    s.add_argument("--baselines", default="resnet20,mobilenetv2,efficientnet_b0,inception")
    for q in (m, s):
        q.add_argument("--work", default="/tmp/nas-own-data")
        q.add_argument("--out", default=str(ROOT / "results" / "own-data"))
    args = p.parse_args()
    result = memory(args) if args.what == "memory" else search(args)
    text = memory_text(result) if args.what == "memory" else search_text(result)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "memory" if args.what == "memory" else f"search-{_name(args)}"
    (out / f"{name}.json").write_text(json.dumps(result, indent=2))
    (out / f"{name}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
