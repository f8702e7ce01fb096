"""What can be built: genotypes, ops, the builder, the cost counter, search spaces, the zoo."""

from searchspace import nb201, nbmacro, zoo
from searchspace.builder import build
from searchspace.cost import Cost, Limits, cost
from searchspace.genotype import Cell, Genotype, GenotypeError, Head, Node, Stage, Stem
from searchspace.space import SearchSpace, SpaceError, load_space, space_names
from searchspace.transform import scale

__all__ = [
    "Cell", "Cost", "Genotype", "GenotypeError", "Head", "Limits", "Node", "SearchSpace",
    "SpaceError", "Stage", "Stem", "build", "cost", "load_space", "nb201", "nbmacro", "scale",
    "space_names", "zoo",
]
