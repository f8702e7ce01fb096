"""Training and inference throughput of the training loop's step on CPU (and CUDA if present).

For each network: images/s for a training step (batched crop+flip on the device, channels_last,
bf16 autocast on CUDA, Nesterov SGD) and for inference; on CUDA also the achieved model
FLOP/s (6 x multiply-adds per training image, 2 x per inference image) against the measured
bf16 matmul peak.

    python benchmarks/train_throughput.py [--device cpu|cuda] [--steps 10]
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
from torch import nn

import searchspace
from evaluators.augment import random_crop_flip, to_input
from evaluators.data import MEAN, STD
from nas.report_table import table


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_flops(device: torch.device) -> float:
    """Measured dense matmul FLOP/s: bf16 on CUDA, fp32 on CPU."""
    n, dtype = (8192, torch.bfloat16) if device.type == "cuda" else (1024, torch.float32)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    _sync(device)
    reps = 20 if device.type == "cuda" else 5
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    _sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - start)


def _networks() -> list[tuple[str, searchspace.Genotype]]:
    nets = [("resnet20", searchspace.zoo.get("resnet20")),
            ("mobilenetv2", searchspace.zoo.get("mobilenetv2"))]
    return nets + random_cells(3, 20e6, 300e6)


def random_cells(count: int, low: float, high: float, seed: int = 0
                 ) -> list[tuple[str, searchspace.Genotype]]:
    """The first ``count`` samples of the `cells` space from ``seed`` whose multiply-adds lie
    in [low, high], named by their seed."""
    space, out = searchspace.load_space("cells"), []
    while len(out) < count:
        g = space.sample(seed)
        if low <= searchspace.cost(g).madds <= high:
            out.append((f"cells seed {seed}", g))
        seed += 1
    return out


def measure(g: searchspace.Genotype, device: torch.device, batch: int, steps: int
            ) -> tuple[float, float]:
    """(training images/s, inference images/s)."""
    cuda = device.type == "cuda"
    model = searchspace.build(g).to(device, memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    x = torch.randint(0, 256, (batch, 3, 32, 32), dtype=torch.uint8, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=device).view(1, 3, 1, 1)
    gen = torch.Generator(device=device).manual_seed(0)

    def train_step() -> None:
        xb = to_input(random_crop_flip(x, 4, True, gen), mean, std, g.resolution, True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            loss = loss_fn(model(xb).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def infer_step() -> None:
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            model(to_input(x, mean, std, g.resolution, True))

    rates = []
    for step, mode in ((train_step, model.train), (infer_step, model.eval)):
        mode()
        rates.append(batch / timed(step, steps, device))
    return rates[0], rates[1]


def timed(step, reps: int, device: torch.device, warm: int = 3) -> float:
    """Seconds a call of ``step`` takes, over ``reps`` calls after ``warm`` unmeasured ones
    (the device synchronised around them)."""
    for _ in range(warm):
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(reps):
        step()
    _sync(device)
    return (time.perf_counter() - start) / reps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--batch", type=int, default=0, help="default: 64 on CPU, 512 on CUDA")
    args = p.parse_args()
    device = torch.device(args.device)
    batch = args.batch or (512 if device.type == "cuda" else 64)
    peak = peak_flops(device)
    rows = []
    for name, g in _networks():
        madds = searchspace.cost(g).madds
        train_ips, infer_ips = measure(g, device, batch, args.steps)
        achieved = 6 * madds * train_ips
        rows.append((name, f"{madds / 1e6:.1f}M", f"{train_ips:,.0f}", f"{infer_ips:,.0f}",
                     f"{achieved / 1e12:.2f}", f"{100 * achieved / peak:.1f}%"))
    print(table(("network", "madds", "train img/s", "infer img/s", "train TFLOP/s",
                 "of peak"), rows, right={1, 2, 3, 4, 5}))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    kind = "bf16 matmul" if device.type == "cuda" else "fp32 matmul"
    print(f"\ndevice {device} ({name or platform.machine()}), batch {batch}, "
          f"measured peak {peak / 1e12:.2f} TFLOP/s ({kind}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads")


if __name__ == "__main__":
    main()
