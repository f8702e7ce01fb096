"""Compound scaling to a budget (EfficientNet): depth a^phi, width b^phi, resolution c^phi.

Rounding, stated once: cells per stage round up, channels to multiples of 8
(``searchspace.scale``), the input side to a multiple of 8 (at least 16). Since cost is
analytic, phi is solved numerically: the largest phi whose rounded network fits the
budget. Rounding leaves gaps (one more cell per stage can add a third), so a last step fills
the remainder one cell or eight channels at a time, always the largest step that still
fits, until nothing more fits; the result lands in [90%, 100%] of the budget.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import searchspace
from nas.errors import UserError

__all__ = ["ScaleResult", "scale_to_budget", "compound", "fill_ratio", "EFFICIENTNET",
           "grid_points", "MAX_COEFFICIENT"]

EFFICIENTNET = (1.2, 1.1, 1.15)  # alpha (depth), beta (width), gamma (resolution)
# alpha, beta and gamma lie in [1, 4]: EfficientNet's are near 1.1, the grid's at most 2, and
# 4**96 (the largest phi tried) still fits a float.
MAX_COEFFICIENT = 4.0
MIN_RESOLUTION = 16


@dataclass(frozen=True)
class ScaleResult:
    """The scaled genotype and how it was reached."""

    genotype: searchspace.Genotype
    phi: float  # the compound coefficient chosen before filling
    ratio: float  # cost / budget of the result (the tightest limit)
    fill_steps: int  # single-cell or 8-channel steps added after the compound rule
    alpha: float
    beta: float
    gamma: float


def fill_ratio(g: searchspace.Genotype, limits: searchspace.Limits) -> float:
    """The largest cost / limit over the limits."""
    return limits.use(limits.cost(g))


def _resolution(side: float) -> int:
    return max(MIN_RESOLUTION, int(round(side / 8)) * 8)


def compound(g: searchspace.Genotype, phi: float, alpha: float, beta: float, gamma: float
             ) -> searchspace.Genotype:
    """``g`` scaled by the compound rule at coefficient ``phi`` (no budget involved)."""
    return searchspace.scale(g, depth=alpha**phi, width=beta**phi,
                             resolution=_resolution(g.resolution * gamma**phi))


def scale_to_budget(g: searchspace.Genotype, limits: searchspace.Limits,
                    alpha: float = EFFICIENTNET[0], beta: float = EFFICIENTNET[1],
                    gamma: float = EFFICIENTNET[2]) -> ScaleResult:
    """Grow (or shrink) ``g`` to fill ``limits`` without passing them.

    Example:
        >>> r = scale_to_budget(zoo.get("resnet20"), Limits(madds=300e6))
        >>> 0.9 <= r.ratio <= 1.0
        True
    """
    if not limits:
        raise UserError("scaling needs a budget")
    for name, value in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
        if not 1.0 <= value <= MAX_COEFFICIENT:
            raise UserError(f"{name} must be from 1 to {MAX_COEFFICIENT:g}, got {value}")

    def ratio(phi: float) -> float:
        try:
            return fill_ratio(compound(g, phi, alpha, beta, gamma), limits)
        except (searchspace.GenotypeError, OverflowError):  # past the limits: does not fit
            return math.inf

    timed = limits.latency_ms is not None
    lo, hi = _bracket(ratio, timed)
    if ratio(lo) > 1.0:
        smallest = limits.cost(compound(g, lo, alpha, beta, gamma))
        raise UserError(f"impossible budget: the smallest version of {g.name or 'the network'} "
                        f"(one cell a stage, 8 channels, {MIN_RESOLUTION}px) costs "
                        f"{smallest.madds / 1e6:.2f}M multiply-adds and "
                        f"{smallest.params:,} parameters"
                        + (f", {smallest.latency_ms:.3g} ms predicted" if timed else ""))
    for _ in range(20 if timed else 40):  # bisection on "fits": nearly, not exactly, monotone
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if ratio(mid) <= 1.0 else (lo, mid)
    phi = max((p for p in _around(lo) if ratio(p) <= 1.0), key=ratio, default=lo)
    best = compound(g, phi, alpha, beta, gamma)
    best, steps = _fill(best, limits)
    return ScaleResult(best.replace(name=_scaled_name(g.name)), phi,
                       fill_ratio(best, limits), steps, alpha, beta, gamma)


def _bracket(ratio: Callable[[float], float], timed: bool) -> tuple[float, float]:
    """A phi that fits (unless none does) and one that does not. Counting is instant: the
    wide [-12, 12] first. A latency is predicted from kernels timed as they are met: outward
    from phi = 0, so that no network far past the budget is ever traced and timed."""
    if not timed:
        lo, hi = -12.0, 12.0
        while ratio(hi) <= 1.0 and hi < 60:
            hi *= 2
        return lo, hi
    if ratio(0.0) <= 1.0:
        lo, hi = 0.0, 0.5
        while ratio(hi) <= 1.0 and hi < 60:
            lo, hi = hi, hi * 2
        return lo, hi
    lo, hi = -0.5, 0.0
    while ratio(lo) > 1.0 and lo > -12:
        lo, hi = max(lo * 2, -12.0), lo
    return lo, hi


def _around(phi: float) -> Iterator[float]:
    for i in range(41):
        yield phi - 0.5 + i * 0.025


def _scaled_name(name: str) -> str:
    return f"{name}-scaled" if name and not name.endswith("-scaled") else name


def _moves(g: searchspace.Genotype) -> Iterator[searchspace.Genotype]:
    """One more cell in a stage, or eight more channels in a stage."""
    for i, s in enumerate(g.stages):
        for change in ({"depth": s.depth + 1}, {"width": s.width + 8}):
            stages = g.stages[:i] + (dataclasses.replace(s, **change),) + g.stages[i + 1:]
            try:
                yield g.replace(stages=stages)
            except searchspace.GenotypeError:
                continue


def _fill(g: searchspace.Genotype, limits: searchspace.Limits
          ) -> tuple[searchspace.Genotype, int]:
    steps = 0
    current = fill_ratio(g, limits)
    while steps < 500:
        fits = [(r, m) for m in _moves(g) if (r := fill_ratio(m, limits)) <= 1.0]
        if not fits:
            break
        r, m = max(fits, key=lambda t: t[0])
        if r <= current:
            break
        g, current, steps = m, r, steps + 1
    return g, steps


def grid_points(step: float = 0.1, target: float = 2.0) -> list[tuple[float, float, float]]:
    """(alpha, beta, gamma) on alpha * beta^2 * gamma^2 ~ target, all >= 1 (the paper's step 1)."""
    points = []
    for a in _frange(1.0, 2.0, step):
        for b in _frange(1.0, math.sqrt(target), step / 2):
            g2 = target / (a * b * b)
            if g2 >= 1.0:
                points.append((round(a, 3), round(b, 3), round(math.sqrt(g2), 3)))
    return points


def _frange(start: float, stop: float, step: float) -> Iterator[float]:
    x = start
    while x <= stop + 1e-9:
        yield x
        x += step


def best_coefficients(g: searchspace.Genotype, score: Callable[[searchspace.Genotype], float],
                      points: list[tuple[float, float, float]], target: float = 2.0
                      ) -> tuple[tuple[float, float, float], list[tuple[tuple, float]]]:
    """Score ``g`` grown to ``target`` times its multiply-adds along each (alpha, beta,
    gamma); the best and every score.

    Every point is scaled to the same budget (not to phi = 1, where rounding depths, widths
    and resolutions leaves the points between 1.7x and 3.1x the base): a point must win by
    its shape, not by having rounded up.
    """
    limits = searchspace.Limits(madds=target * searchspace.cost(g).madds)
    scores = [(p, score(scale_to_budget(g, limits, *p).genotype)) for p in points]
    return max(scores, key=lambda t: t[1])[0], scores
