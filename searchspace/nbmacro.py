"""NAS-Bench-Macro's network as a genotype: 8 MobileNetV2-block layers, its 8-digit string.

NAS-Bench-Macro (Su et al., CVPR 2021) trained every network of a macro space three times on
CIFAR-10. The network (the benchmark's ``train/model.py``): a 3x3 conv stem (32 channels,
BN, ReLU), 8 searched layers in three stages of 2, 3 and 3 at 64, 128 and 256 channels, each
stage's first layer strided, then a 1x1 conv to 1280 channels, BN, ReLU, global average pooling
and the classifier. Each layer is a digit:

- ``0`` identity: in a stage's first layer a strided 1x1 conv and BN (channels change there);
  elsewhere nothing at all, so it is dropped, and the strings of one network (identities
  moved within a stage) decode to one genotype and one ``key()``;
- ``1`` MB3_K3 and ``2`` MB6_K5: the inverted residual (1x1 conv to e x the input channels,
  BN, ReLU; k x k depthwise conv, BN, ReLU; 1x1 conv, BN; the input added when shapes match).

Each layer is a stage of depth 1 here, since consecutive layers may differ.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from searchspace.genotype import Cell, Genotype, GenotypeError, Head, Node, Stage, Stem

__all__ = ["CHOICES", "DECISIONS", "STAGES", "arch_string", "parse_arch", "genotype",
           "canonical"]

CHOICES = ("identity", "mb3_k3", "mb6_k5")  # digit 0, 1, 2 of the benchmark's string
DECISIONS = tuple(f"layer{i}" for i in range(1, 9))
STAGES = ((64, 2), (128, 3), (256, 3))  # (channels, layers); a stage's first layer strides
STEM_WIDTH, HEAD_WIDTH = 32, 1280
_BLOCKS = {"mb3_k3": (3.0, 3), "mb6_k5": (6.0, 5)}  # expansion, depthwise kernel


def arch_string(assignment: Mapping[str, Any]) -> str:
    """The benchmark's 8-digit string for ``{"layer1": choice, ..., "layer8": choice}``."""
    return "".join(str(CHOICES.index(assignment[d])) for d in DECISIONS)


def parse_arch(text: str) -> dict[str, str]:
    """``{"layer1": choice, ...}`` from an 8-digit string; GenotypeError when it is not one."""
    text = text.strip()
    if len(text) != len(DECISIONS) or any(c not in "012" for c in text):
        raise GenotypeError(f"{text!r}: a NAS-Bench-Macro network is 8 digits, each 0 "
                            "(identity), 1 (MB3_K3) or 2 (MB6_K5)")
    return {d: CHOICES[int(c)] for d, c in zip(DECISIONS, text)}


def canonical(text: str) -> str:
    """The string of the same network with each stage's identities moved to its end (the
    benchmark file lists every spelling; this names the network)."""
    parse_arch(text)  # checks it
    digits, out, start = text.strip(), [], 0
    for _, n in STAGES:
        first, rest = digits[start], digits[start + 1:start + n]
        kept = [c for c in rest if c != "0"]
        out.append(first + "".join(kept) + "0" * (len(rest) - len(kept)))
        start += n
    return "".join(out)


def genotype(assignment: Mapping[str, Any], resolution: int = 32,
             num_classes: int = 10) -> Genotype:
    """The benchmark's network for an assignment of the 8 layers, named by its string."""
    for d in DECISIONS:
        if assignment[d] not in CHOICES:
            raise GenotypeError(f"{d}: {assignment[d]!r} is not one of {', '.join(CHOICES)}")
    choices = [assignment[d] for d in DECISIONS]
    stages: list[Stage] = []
    start = 0
    for width, n in STAGES:
        for i, choice in enumerate(choices[start:start + n]):
            if i == 0 or choice != "identity":  # a later identity is no layer at all
                stages.append(Stage(cell=_cell(choice, strided=i == 0), depth=1, width=width,
                                    stride=2 if i == 0 else 1))
        start += n
    return Genotype(stem=Stem(width=STEM_WIDTH, act="relu"), stages=tuple(stages),
                    head=Head(width=HEAD_WIDTH, act="relu"), resolution=resolution,
                    num_classes=num_classes, name=arch_string(assignment))


def _cell(choice: str, strided: bool) -> Cell:
    if choice == "identity":  # only a stage's first layer: a strided 1x1 conv and BN
        return Cell(nodes=(Node(inputs=(0,), op="conv", kernel=1, width=1.0, strided=True),),
                    outputs=(1,))
    expand, kernel = _BLOCKS[choice]
    nodes = (Node(inputs=(0,), op="conv", kernel=1, width=expand, width_of="in", act="relu"),
             Node(inputs=(1,), op="conv", kernel=kernel, depthwise=True, strided=strided,
                  act="relu"),
             Node(inputs=(2,), op="conv", kernel=1, width=1.0))
    return Cell(nodes=nodes, outputs=(3,), residual="none" if strided else "identity")
