"""Pure transformations of a genotype: depth, width and resolution multipliers.

Rounding, stated once: cells per stage round up (``ceil``, at least 1); channels round to the
nearest multiple of 8 and never drop more than 10% (``round_channels``); the resolution is
given already rounded by the caller.
"""

from __future__ import annotations

import dataclasses
import math

from searchspace.genotype import Genotype
from searchspace.ops import round_channels

__all__ = ["scale"]


def scale(g: Genotype, depth: float = 1.0, width: float = 1.0,
          resolution: int | None = None) -> Genotype:
    """``g`` with every stage's depth and every width multiplied, at a new input side.

    Example:
        >>> scale(zoo.get("resnet20"), depth=2.0).stages[0].depth
        6
    """
    stages = tuple(
        dataclasses.replace(s, depth=max(1, math.ceil(s.depth * depth - 1e-9)),
                            width=_channels(s.width, width))
        for s in g.stages
    )
    stem = dataclasses.replace(g.stem, width=_channels(g.stem.width, width))
    head = g.head
    if head.width is not None:
        head = dataclasses.replace(head, width=_channels(head.width, width))
    return dataclasses.replace(g, stem=stem, stages=stages, head=head,
                               resolution=resolution or g.resolution)


def _channels(c: int, mult: float) -> int:
    return c if mult == 1.0 else round_channels(c * mult)
