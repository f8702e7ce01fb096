"""Zero-cost proxies: a network scored at initialisation from one or two minibatches.

Each score is higher-is-better and deterministic for a seed (the initial weights and the
minibatches both come from it). What each computes, after its reference code:

- ``synflow`` (Tanaka et al. 2020; zero-cost-nas): BN removed, weights made positive, double
  precision, a single all-ones image; sum over conv and linear weights of |w * dR/dw| where R
  is the sum of the logits. Reported as its natural log (the raw sum spans hundreds of
  orders of magnitude; the order is the same).
- ``naswot`` (Mellor et al. 2021): the log-determinant of K = C C^T + (1 - C)(1 - C)^T, where
  row i of C is minibatch image i's binary code (which units are positive at the input of
  every ReLU), train-mode BN, no augmentation.
- ``grad_norm`` (Abdelfattah et al. 2021): sum over conv and linear weights of the norm of
  the cross-entropy gradient on one minibatch.
- ``zico`` (Li et al. 2023): over two minibatches, for each conv and linear layer
  log(sum over its weights of mean|g| / std(g)), summed over layers.
- ``madds``, ``params``: the cost counter's figures, the trivial baselines every proxy must
  beat on NAS-Bench-201.

``vote`` ranks a pool of networks by several scores and sums the ranks (ties averaged).

    zc = ZeroCost(data="cifar10-jpeg.tar.gz")
    zc.score(genotype, ["naswot", "synflow"])  # -> {"naswot": 1203.4, "synflow": 171.2}
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

import searchspace
from evaluators.data import load_search

__all__ = ["ZeroCost", "PROXIES", "TRIVIAL", "ranks", "vote", "kendall_tau", "spearman_rho"]

BATCH = 64  # images per minibatch (grad_norm's and zico's reference setting on NB201)
NASWOT_BATCH = 128  # NASWOT's reference batch
_WEIGHTED = (nn.Conv2d, nn.Linear)
_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.SiLU)


def _weights(model: nn.Module) -> list[torch.Tensor]:
    return [m.weight for m in model.modules() if isinstance(m, _WEIGHTED)]


def synflow(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model = copy.deepcopy(model).double().eval()  # no dropout; BN is removed below
    for m in list(model.modules()):
        for child_name, child in list(m.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                setattr(m, child_name, nn.Identity())
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
    model.zero_grad()
    ones = torch.ones((1, *x.shape[1:]), dtype=torch.float64)
    model(ones).sum().backward()
    total = sum(float((w.detach() * w.grad).abs().sum()) for w in _weights(model)
                if w.grad is not None)
    return math.log(total) if total > 0 else -math.inf


def naswot(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    x = x[:NASWOT_BATCH]
    n = len(x)
    kernel = torch.zeros(n, n, dtype=torch.float64)

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        # K = C C^T + (1-C)(1-C)^T = 2 C C^T - s_i - s_j + units: one matmul per layer;
        # counts up to 2^24 are exact in float32
        c = (inputs[0].detach().reshape(n, -1) > 0).float()
        s = c.sum(1, keepdim=True)
        kernel.add_((2 * c @ c.T - s - s.T + c.shape[1]).double())

    handles = [m.register_forward_pre_hook(hook) for m in model.modules()
               if isinstance(m, _ACTIVATIONS)]
    try:
        model.train()
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    sign, logdet = torch.linalg.slogdet(kernel)
    return float(logdet) if sign != 0 else -math.inf


def grad_norm(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.train()
    model.zero_grad()
    F.cross_entropy(model(x[:BATCH]), y[:BATCH]).backward()
    return sum(float(w.grad.norm()) for w in _weights(model) if w.grad is not None)


def zico(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.train()
    grads: list[list[torch.Tensor]] = [[] for _ in _weights(model)]
    for i in range(2):
        model.zero_grad()
        xb, yb = x[i * BATCH:(i + 1) * BATCH], y[i * BATCH:(i + 1) * BATCH]
        F.cross_entropy(model(xb), yb).backward()
        for g, w in zip(grads, _weights(model)):
            g.append(torch.zeros_like(w).flatten() if w.grad is None else w.grad.flatten())
    score = 0.0
    for g in grads:
        a = torch.stack(g).double()
        std, mean_abs = a.std(0, unbiased=False), a.abs().mean(0)
        live = std != 0
        t = float((mean_abs[live] / std[live]).sum())
        if t > 0:
            score += math.log(t)
    return score


Proxy = Callable[[nn.Module, torch.Tensor, torch.Tensor], float]
PROXIES: dict[str, Proxy] = {"synflow": synflow, "naswot": naswot, "grad_norm": grad_norm,
                             "zico": zico}
TRIVIAL = ("madds", "params")  # from the cost counter: no network is built


class ZeroCost:
    """Scores genotypes by zero-cost proxies on fixed minibatches of the training split."""

    def __init__(self, data: str | Path | None = None, seed: int = 0, val_size: int = 5000
                 ) -> None:
        self.data, self.seed, self.val_size = data, seed, val_size
        self._batch: tuple[torch.Tensor, torch.Tensor] | None = None

    def load(self) -> None:
        """Draw the minibatches once (normalised, no augmentation): 2 x BATCH images."""
        if self._batch is not None:
            return
        split = load_search(self.data, self.val_size)
        n = min(max(2 * BATCH, NASWOT_BATCH), len(split.train_y))  # a small dataset: all
        pick = np.random.default_rng(self.seed).choice(len(split.train_y), n, replace=False)
        x = torch.from_numpy(split.train_x[pick]).float().div_(255)
        mean = torch.tensor(split.mean).view(1, 3, 1, 1)
        std = torch.tensor(split.std).view(1, 3, 1, 1)
        self._batch = ((x - mean) / std, torch.from_numpy(split.train_y[pick]))

    def score(self, g: searchspace.Genotype, names: Sequence[str]) -> dict[str, float]:
        """``{name: score}`` for the proxies ``names`` (of PROXIES and TRIVIAL), each on the
        same initial weights; the time taken is under "seconds"."""
        start = time.perf_counter()
        out: dict[str, float] = {}
        c = searchspace.cost(g)
        for name in names:
            if name in TRIVIAL:
                out[name] = float(getattr(c, name))
            elif name not in PROXIES:
                raise ValueError(f"unknown zero-cost proxy {name!r} (known: "
                                 f"{', '.join([*PROXIES, *TRIVIAL])})")
        wanted = [n for n in names if n in PROXIES]
        if wanted:
            self.load()
            assert self._batch is not None
            x, y = self._batch
            if g.resolution != x.shape[-1]:
                x = F.interpolate(x, size=(g.resolution, g.resolution), mode="bilinear",
                                  antialias=True, align_corners=False)
            torch.manual_seed(self.seed)
            model = searchspace.build(g)
            initial = copy.deepcopy(model.state_dict())
            for name in wanted:
                model.load_state_dict(initial)  # every proxy sees the same weights
                out[name] = PROXIES[name](model, x, y)
        out["seconds"] = time.perf_counter() - start
        return out


def ranks(values: Sequence[float]) -> np.ndarray:
    """Ranks from 1 (lowest) to n, ties given their average rank."""
    v = np.asarray(values, dtype=float)
    order = np.argsort(v, kind="stable")
    r = np.empty(len(v))
    r[order] = np.arange(1, len(v) + 1)
    for value in np.unique(v):
        same = v == value
        if same.sum() > 1:
            r[same] = r[same].mean()
    return r


def vote(scores: Sequence[dict[str, float]], names: Sequence[str]) -> np.ndarray:
    """A pool's combined score: the sum over ``names`` of each network's rank in the pool."""
    return sum(ranks([s[n] for s in scores]) for n in names)


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall's tau-b (ties in either sequence accounted for)."""
    ra, rb = ranks(a), ranks(b)
    i, j = np.triu_indices(len(ra), 1)
    da, db = np.sign(ra[i] - ra[j]), np.sign(rb[i] - rb[j])
    denominator = math.sqrt(float((da != 0).sum()) * float((db != 0).sum()))
    return float((da * db).sum()) / denominator if denominator else 0.0


def spearman_rho(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rho: the correlation of the ranks (ties averaged)."""
    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])
