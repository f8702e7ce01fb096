"""The next GPU measurements in about two minutes: where depthwise networks lose their time.

    python benchmarks/gpu_probe.py --out $OUT [--seconds 150]
    python benchmarks/gpu_probe.py --dry-run --out /tmp/probe     # the CPU rehearsal

On an H100 the 600M network our CPU search found trains at 1.8% of the bf16 peak, and
mobilenetv2 too (results/gpu/report.md): depthwise convolutions. PyTorch hands a depthwise
convolution to cuDNN only for some kernel sizes and feature maps and runs the others on a
slower native kernel, and the layout (channels_last or NCHW) decides which. So, in order
until ``--seconds`` are spent:

1. the product's own training loop (`evaluators.train.train`, bf16, CUDA graphs) on both
   networks, channels_last against NCHW, then with `torch.compile` (its set-up time apart);
2. every depthwise convolution shape of the 600M network alone, forward and backward at
   batch 256, in both layouts: milliseconds and the memory bandwidth they reach.

It writes probe.json and probe.md to ``--out``, with ``fastest``: the recipe settings
(`channels_last`, `compile`) that trained the 600M network fastest, which
`campaign.py --probe` applies to its recipes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch import nn

import searchspace
from evaluators.recipe import load_profile

sys.path.insert(0, str(Path(__file__).parent))
from gpu_speed import speed  # noqa: E402
from train_throughput import peak_flops, timed  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
COMPILE_S = 90.0  # what a compiled run is expected to cost beyond an eager one, to plan
CONFIGS = [(True, False), (False, False), (True, True), (False, True)]  # (channels_last,
# compile): the eager pair first; a compiled layout only after its eager one was measured


def networks(dry: bool) -> list[tuple[str, searchspace.Genotype]]:
    nets = [("600M (CPU search's)",
             searchspace.Genotype.from_yaml(ROOT / "results/cpu-search-600M/best.yaml")),
            ("mobilenetv2", searchspace.zoo.get("mobilenetv2"))]
    if dry:  # small enough for a CPU minute
        nets = [(n, searchspace.scale(g, width=0.25, depth=0.34, resolution=16))
                for n, g in nets]
    return nets


def train_speeds(nets, recipe, steps: int, device: torch.device, until: float,
                 compile_ok: bool, on_row) -> list[dict]:
    """Images/s of the training loop for each network and layout, compiled or not;
    ``on_row(rows)`` after each measurement (so a crash later keeps it)."""
    rows = []
    for channels_last, compiled in CONFIGS:  # every network eager before any compiles
        for name, g in nets:
            if compiled and not compile_ok:
                continue
            left = until - time.perf_counter()
            if left < (COMPILE_S if compiled else 10.0):
                rows.append({"network": name, "channels_last": channels_last,
                             "compile": compiled, "skipped": "out of time"})
                continue
            row = {"network": name, "madds": searchspace.cost(g).madds,
                   "channels_last": channels_last, "compile": compiled}
            start = time.perf_counter()
            try:
                r = recipe.replace(channels_last=channels_last, compile=compiled)
                ips = speed(g, r, steps, device, graphs=device.type == "cuda")
            except (RuntimeError, torch.cuda.OutOfMemoryError) as exc:  # one row lost, not all
                row["skipped"] = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0]}"
                rows.append(row)
                _say(f"{name}: {row['skipped']}")
                continue
            wall = time.perf_counter() - start
            # set-up: what the run took beyond its three epochs at the steady rate
            row |= {"images_per_s": round(ips, 1), "wall_s": round(wall, 1),
                    "setup_s": round(max(0.0, wall - 3 * steps * r.batch_size / ips), 1)}
            rows.append(row)
            on_row(rows)
            _say(f"{name}: {'channels_last' if channels_last else 'NCHW'}"
                 f"{' compiled' if compiled else ''}: {ips:,.0f} img/s "
                 f"({wall:.0f}s, {row['setup_s']:.0f}s of it set-up)")
    return rows


def depthwise_shapes(g: searchspace.Genotype) -> list[dict]:
    """Each distinct depthwise convolution of ``g``: channels, kernel, stride, input side."""
    model, seen = searchspace.build(g).eval(), {}

    def hook(m: nn.Conv2d, inputs, output) -> None:
        key = (m.in_channels, m.kernel_size[0], m.stride[0], inputs[0].shape[-1])
        seen[key] = seen.get(key, 0) + 1

    for m in model.modules():
        if isinstance(m, nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels:
            m.register_forward_hook(hook)
    with torch.no_grad():
        model(torch.zeros(1, 3, g.resolution, g.resolution))
    return [{"channels": c, "kernel": k, "stride": s, "side": h, "count": n}
            for (c, k, s, h), n in sorted(seen.items(), key=lambda kv: (-kv[0][3], kv[0][0]))]


def time_depthwise(shape: dict, batch: int, device: torch.device, channels_last: bool,
                   reps: int) -> dict:
    """Forward and backward of one depthwise convolution in bf16: ms, and GB/s moved."""
    c, k, s, h = shape["channels"], shape["kernel"], shape["stride"], shape["side"]
    conv = nn.Conv2d(c, c, k, s, k // 2, groups=c, bias=False).to(device)
    x = torch.randn(batch, c, h, h, device=device, requires_grad=True)
    if channels_last:
        conv = conv.to(memory_format=torch.channels_last)
        x = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
    cuda = device.type == "cuda"

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            y = conv(x)
        y.float().sum().backward()

    ms = 1e3 * timed(step, reps, device)
    out_side = (h + s - 1) // s
    # bf16: forward reads x, writes y; backward reads y's gradient and x, writes x's gradient
    moved = 2 * batch * c * (3 * h * h + 2 * out_side * out_side)
    return {"ms": round(ms, 3), "GB_per_s": round(moved / ms / 1e6, 1)}


def _say(line: str) -> None:
    print(f"probe: {line}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder for probe.json and probe.md")
    p.add_argument("--seconds", type=float, default=150.0,
                   help="time budget (default 150; a run started is not cut short)")
    p.add_argument("--dry-run", action="store_true", help="tiny networks on the CPU")
    args = p.parse_args(argv)
    cuda = torch.cuda.is_available() and not args.dry_run
    if not cuda and not args.dry_run:
        print("gpu_probe: error: no GPU here; --dry-run rehearses the probe on the CPU",
              file=sys.stderr)
        return 2
    device = torch.device("cuda" if cuda else "cpu")
    until = time.perf_counter() + args.seconds
    nets = networks(args.dry_run)
    recipe = load_profile("full").replace(device=device.type)
    if not cuda:
        recipe = recipe.replace(batch_size=32)  # a rehearsal of the code, not of the speeds
    steps = 20 if cuda else 2
    result = {"device": torch.cuda.get_device_name(0) if cuda else "cpu (dry run)",
              "torch": torch.__version__, "cudnn": torch.backends.cudnn.version(),
              "peak_tflops": round(peak_flops(device) / 1e12, 1), "batch": recipe.batch_size,
              "precision": "bf16 autocast, CUDA graphs" if cuda else "fp32 (a CPU rehearsal)"}
    _say(f"{result['device']}, torch {result['torch']}, peak {result['peak_tflops']} TFLOP/s")
    out = Path(args.out)

    def keep(rows: list[dict]) -> None:
        result["training"] = rows
        result["fastest"] = fastest(rows, nets[0][0])
        write(out, result)

    result["depthwise"] = []
    keep(train_speeds(nets, recipe, steps, device, until, cuda, keep))
    for shape in depthwise_shapes(nets[0][1]):
        try:
            if time.perf_counter() > until:
                shape["skipped"] = "out of time"
                continue
            for cl in (True, False):
                shape["channels_last" if cl else "nchw"] = time_depthwise(
                    shape, 256 if cuda else 8, device, cl, 20 if cuda else 1)
        except (RuntimeError, torch.cuda.OutOfMemoryError) as exc:
            shape["skipped"] = f"failed: {type(exc).__name__}"
        finally:
            result["depthwise"].append(shape)
    keep(result["training"])
    _say(f"wrote {out / 'probe.json'} and {out / 'probe.md'}")
    return 0


FULL_IMAGES = 3_000_000  # a `full` training: 60 passes over 50,000 images


def fastest(rows: list[dict], network: str) -> dict:
    """The recipe settings that would train ``network`` by `full` fastest, its set-up counted
    once a call (a compilation is not carried between calls) (the defaults if none ran)."""
    ran = [r for r in rows if r["network"] == network and "images_per_s" in r]
    if not ran:
        return {"channels_last": True, "compile": False}
    best = min(ran, key=lambda r: FULL_IMAGES / r["images_per_s"] + r["setup_s"])
    return {"channels_last": best["channels_last"], "compile": best["compile"],
            "images_per_s": best["images_per_s"]}


def write(out: Path, result: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "probe.json").write_text(json.dumps(result, indent=1))
    peak = result["peak_tflops"] * 1e12
    lines = [f"# GPU probe: {result['device']}", "",
             f"torch {result['torch']}, cuDNN {result['cudnn']}, measured peak "
             f"{result['peak_tflops']} TFLOP/s; batch {result['batch']}, {result['precision']}.",
             "", "## The training loop", "",
             "| network | layout | compiled | img/s | of peak | wall s |",
             "|---|---|---|---:|---:|---:|"]
    for r in result["training"]:
        layout = "channels_last" if r["channels_last"] else "NCHW"
        if "images_per_s" not in r:
            lines.append(f"| {r['network']} | {layout} | {r['compile']} | {r['skipped']} | | |")
            continue
        share = 6 * r["madds"] * r["images_per_s"] / peak
        lines.append(f"| {r['network']} | {layout} | {r['compile']} | {r['images_per_s']:,.0f} "
                     f"| {100 * share:.1f}% | {r['wall_s']:.0f} |")
    lines += ["", "## Depthwise convolutions of the 600M network (forward + backward)", "",
              "| channels | kernel | stride | side | count | channels_last ms | GB/s | NCHW ms "
              "| GB/s |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for d in result["depthwise"]:
        cl, nc = d.get("channels_last", {}), d.get("nchw", {})
        lines.append(f"| {d['channels']} | {d['kernel']} | {d['stride']} | {d['side']} | "
                     f"{d['count']} | {cl.get('ms', '-')} | {cl.get('GB_per_s', '-')} | "
                     f"{nc.get('ms', '-')} | {nc.get('GB_per_s', '-')} |")
    f = result["fastest"]
    lines += ["", f"Fastest for the 600M network: channels_last={f['channels_last']}, "
              f"compile={f['compile']}.", ""]
    (out / "probe.md").write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
