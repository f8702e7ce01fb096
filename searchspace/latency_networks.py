"""The networks a new latency table is measured and calibrated on: the zoo as it is, 1.5x as
wide and at 56 pixels (the shapes compound scaling makes), and random members of each
search space."""

from __future__ import annotations

from searchspace import zoo
from searchspace.cost import cost
from searchspace.genotype import Genotype
from searchspace.space import load_space, space_names
from searchspace.transform import scale

__all__ = ["calibration_networks", "MAX_MADDS"]

MAX_MADDS = 1.5e9  # larger networks take over 50 ms each to time and add little to the fit


def calibration_networks(samples: int = 10, max_madds: float = MAX_MADDS,
                         zoo_names: list[str] | None = None) -> list[Genotype]:
    """The zoo (or ``zoo_names``) as it is, 1.5x as wide and at 56 pixels, and ``samples``
    random networks of each space, seeds 0.., each under ``max_madds`` multiply-adds.

    Example:
        >>> [g.name for g in calibration_networks(1, zoo_names=["resnet20"])]
        ['resnet20', 'resnet20x1.5', 'resnet20@56', 'cells-0', 'nb201-0', 'nbmacro-0']
    """
    names = zoo.names() if zoo_names is None else zoo_names
    out = []
    for g in map(zoo.get, names):
        out += [g, scale(g, width=1.5).replace(name=f"{g.name}x1.5"),
                g.replace(resolution=56, name=f"{g.name}@56")]
    out = [g for g in out if cost(g).madds <= max_madds]
    for space in map(load_space, space_names()):
        seed, found = 0, 0
        while found < samples and seed < 100 * samples:
            g = space.sample(seed=seed).replace(name=f"{space.name}-{seed}")
            seed += 1
            if cost(g).madds <= max_madds:
                out.append(g)
                found += 1
    return out
