"""Search the `cells` space with your own scoring function under a budget; export the winner."""
import sys

import nas
import searchspace


def score(genotype: searchspace.Genotype) -> float:
    """Your measure of a network (here: parameters per multiply-add, a stand-in)."""
    cost = searchspace.cost(genotype)
    return cost.params / cost.madds


if __name__ == "__main__":
    result = nas.search("cells", score, budget="50M-madds", trials=30, seed=0)
    nas.export(result.best, sys.argv[1] if len(sys.argv) > 1 else "model.py")
    print(f"score {result.score:.4f}, {searchspace.cost(result.best).madds / 1e6:.1f}M "
          f"multiply-adds, {len(result.records)} trials\n{result.best.to_yaml()}")
