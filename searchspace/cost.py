"""Analytic multiply-adds and parameters of a genotype, per layer and in total.

Convention (DESIGN.md): multiply-accumulates of convolution and linear layers, a layer with a
bias counting d'(k^2 d + 1) per output position; normalisation, activations, pooling and
additions are free. Parameters are the trainable ones (BN has two a channel).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass

from searchspace.genotype import Genotype, GenotypeError
from searchspace.layout import CellPlan, Layout, layout
from searchspace.limits import MAX_MADDS, MAX_PARAMS
from searchspace.ops import OPS, Layer, bn_layer, conv_layer

__all__ = ["Cost", "Limits", "cost", "check_ceiling"]


@dataclass(frozen=True)
class Cost:
    """Totals and the per-layer list they add up from."""

    madds: int
    params: int
    layers: tuple[Layer, ...]
    latency_ms: float | None = None  # predicted, where a latency budget asked for it


@dataclass(frozen=True)
class Limits:
    """Upper limits on a network's cost (a budget, or a fraction of one); None: no limit.

    A latency limit is predicted from the latency table of ``latency_on``: "cpu", "cuda[:N]"
    (this machine's own table, measured as needed) or a table file (``searchspace.latency``).

    Example:
        >>> b = Limits(madds=600e6)
        >>> b.use(Cost(300_000_000, 0, ())), b.over(Cost(700_000_000, 0, ()))
        (0.5, 'madds 700,000,000 over the budget of 600,000,000')
    """

    madds: float | None = None
    params: float | None = None
    latency_ms: float | None = None
    latency_on: str = "cpu"

    def __post_init__(self) -> None:
        for name, limit in self.items():
            if not (limit > 0 and math.isfinite(limit)):
                raise ValueError(f"a {name} limit must be positive and finite, not {limit!r}")

    def items(self) -> Iterator[tuple[str, float]]:
        """(name, limit) of each limit that is set: the names of Cost's fields."""
        for name in ("madds", "params", "latency_ms"):
            limit = getattr(self, name)
            if limit is not None:
                yield name, limit

    def __bool__(self) -> bool:
        return any(True for _ in self.items())

    def cost(self, g: Genotype) -> Cost:
        """``cost(g)``, with its predicted latency when a limit is on latency."""
        c = cost(g)
        if self.latency_ms is None:
            return c
        from searchspace.latency import predictor_for  # torch.fx, only for latency budgets

        return dataclasses.replace(c, latency_ms=predictor_for(self.latency_on).predict(g))

    def use(self, c: Cost) -> float:
        """The largest cost / limit (<= 1 fits); 0 without limits."""
        return max((self._value(c, name) / limit for name, limit in self.items()), default=0.0)

    def fits(self, c: Cost) -> bool:
        return all(self._value(c, name) <= limit for name, limit in self.items())

    def over(self, c: Cost) -> str:
        """Why ``c`` breaks a limit, or "" when it fits."""
        for name, limit in self.items():
            value = self._value(c, name)
            if value > limit and name == "latency_ms":
                return f"predicted latency {value:.3g} ms over the budget of {limit:g} ms"
            if value > limit:
                return f"{name} {int(value):,} over the budget of {int(limit):,}"
        return ""

    @staticmethod
    def _value(c: Cost, name: str) -> float:
        value = getattr(c, name)
        if value is None:  # a Cost counted without the latency its limits ask for
            raise ValueError("a latency limit needs a Cost from Limits.cost(g), not cost(g)")
        return value

    def scaled(self, factor: float) -> Limits:
        """Every limit times ``factor`` (the base search's share of a budget); a latency
        limit times its square root, since latency falls far more slowly than multiply-adds
        (each kernel call costs microseconds however small: on the 2-core CPU the `cells`
        space's cheapest network has 1/58 of resnet20's multiply-adds and 1/3 of its
        latency, 0.77 against 2.3 ms).

        Example:
            >>> Limits(madds=600e6, latency_ms=4.0).scaled(1 / 16)
            Limits(madds=37500000.0, params=None, latency_ms=1.0, latency_on='cpu')
        """
        return dataclasses.replace(self, **{
            n: limit * (factor ** 0.5 if n == "latency_ms" else factor)
            for n, limit in self.items()})


def cost(g: Genotype, prune: bool = True) -> Cost:
    """Count ``g`` without building it (well under a millisecond for the default space).

    Dead nodes (reaching no cell output) are not built, so not counted; ``prune=False``
    counts every node as written, as NAS-Bench-201's own tables do.

    Example:
        >>> cost(searchspace.zoo.get("resnet20")).params
        269722
    """
    return g.memo(f"cost prune={prune}", lambda: _count(g, layout(g, prune)))


def check_ceiling(g: Genotype, plan: Layout) -> None:
    """GenotypeError when the network placed by ``plan`` passes MAX_MADDS or MAX_PARAMS (run
    by validation on every node as written, so every Genotype's cost lies below both)."""
    c = _count(g, plan)
    for what, value, limit in (("multiply-adds", c.madds, MAX_MADDS),
                               ("parameters", c.params, MAX_PARAMS)):
        if value > limit:
            raise GenotypeError(f"{what}: {value:.3g}, over the limit of {limit:.0e} (far above "
                                "any real CNN: check resolution, widths and depths)")


def _count(g: Genotype, plan: Layout) -> Cost:
    layers = _stem(g)
    for cell in plan.cells:
        layers += _cell(cell)
    layers += _head(g, *plan.head_in)
    return Cost(sum(x.madds for x in layers), sum(x.params for x in layers), tuple(layers))


def _stem(g: Genotype) -> list[Layer]:
    side = -(-g.resolution // g.stem.stride)
    c = g.stem.width
    out = [conv_layer("stem.conv", g.in_channels, c, g.stem.kernel, 1, side, side)]
    if g.stem.norm:
        out.append(bn_layer("stem.bn", c, side, side))
    return out


def _cell(cell: CellPlan) -> list[Layer]:
    out: list[Layer] = []
    for i, spec in enumerate(cell.specs):
        out += OPS[spec.node.op].cost(spec, f"{cell.path}.n{i + 1}")
    if cell.shortcut == "project":
        out.append(conv_layer(f"{cell.path}.shortcut.conv", cell.c_in, cell.c_out, 1, 1,
                              cell.h_out, cell.w_out))
        out.append(bn_layer(f"{cell.path}.shortcut.bn", cell.c_out, cell.h_out, cell.w_out))
    elif cell.shortcut == "avgproject" and cell.c_in != cell.c_out:
        out.append(conv_layer(f"{cell.path}.shortcut.conv", cell.c_in, cell.c_out, 1, 1,
                              cell.h_out, cell.w_out))
    return out


def _head(g: Genotype, c: int, h: int, w: int) -> list[Layer]:
    out: list[Layer] = []
    if g.head.width is not None:
        out.append(conv_layer("head.conv", c, g.head.width, 1, 1, h, w))
        out.append(bn_layer("head.bn", g.head.width, h, w))
        c = g.head.width
    elif g.head.preact:
        out.append(bn_layer("head.bn", c, h, w))
    n = g.num_classes
    out.append(Layer("head.fc", "Linear", (n, 1, 1), n * (c + 1), n * (c + 1)))
    return out
