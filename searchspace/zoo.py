"""Hand-designed networks as genotypes, built and costed like discovered ones.

Each lives in ``zoo/<name>.yaml``; ``SOURCES`` names the paper or code it reproduces and the
published figure its parameter count is checked against.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from searchspace.genotype import Genotype

__all__ = ["get", "names", "SOURCES", "path"]

_DIR = Path(__file__).parent / "zoo"

# name -> (source, published parameters for 10 classes at 32x32, note)
SOURCES: dict[str, tuple[str, int, str]] = {
    "resnet20": ("He et al. 2016, CIFAR ResNet (option A shortcut)", 269_722, "0.27M"),
    "resnet32": ("He et al. 2016, CIFAR ResNet (option A shortcut)", 464_154, "0.46M"),
    "resnet44": ("He et al. 2016, CIFAR ResNet (option A shortcut)", 658_586, "0.66M"),
    "resnet56": ("He et al. 2016, CIFAR ResNet (option A shortcut)", 853_018, "0.85M"),
    "resnet110": ("He et al. 2016, CIFAR ResNet (option A shortcut)", 1_727_962, "1.7M"),
    "resnet18": ("kuangliu/pytorch-cifar ResNet18 (projection shortcuts)", 11_173_962, ""),
    "vgg11": ("kuangliu/pytorch-cifar VGG11 with BN", 9_231_114,
              "theirs keeps 2,752 conv biases that BN makes redundant; ours drops them"),
    "vgg16": ("kuangliu/pytorch-cifar VGG16 with BN", 14_728_266,
              "theirs keeps 4,224 conv biases that BN makes redundant; ours drops them"),
    "mobilenetv2": ("Sandler et al. 2018; CIFAR strides as kuangliu/pytorch-cifar", 2_236_682,
                    "torchvision mobilenet_v2 (3,504,872) with a 10-class classifier"),
    "efficientnet_b0": ("Tan & Le 2019 B0; CIFAR strides (stem and stage 2 at stride 1)",
                        4_020_358,
                        "torchvision efficientnet_b0 (5,288,548) with a 10-class classifier"),
    "densenet100": ("Huang et al. 2017, DenseNet-BC L=100 k=12", 769_162, "0.8M"),
    "inception": ("GoogLeNet inception(3a) branch ratios (Szegedy et al. 2015), 3 stages", 0,
                  "a small CIFAR design of ours: no published count"),
}


def names() -> list[str]:
    """Names of the zoo's networks."""
    return sorted(p.stem for p in _DIR.glob("*.yaml"))


def path(name: str) -> Path:
    """The YAML file of a zoo network."""
    return _DIR / f"{name}.yaml"


@cache
def get(name: str) -> Genotype:
    """The genotype of a zoo network; the error lists the known names.

    Example:
        >>> get("resnet20").stages[0].depth
        3
    """
    if not path(name).is_file():
        raise KeyError(f"unknown zoo network {name!r} (known: {', '.join(names())})")
    return Genotype.from_yaml(path(name))
