"""What a genotype, a space or a profile may describe, stated once.

Every limit lies far above any real CIFAR or ImageNet CNN (the figures in the comments) and
low enough that a hostile or mistyped file fails in one line, in well under a second, instead
of hanging, overflowing a float or reaching torch. The YAML loader (``files.py``), genotype
validation (``genotype.py``, ``layout.py``) and the cost counter check them.
"""

from __future__ import annotations

__all__ = ["MAX_FILE_BYTES", "MAX_NESTING", "MAX_CELLS", "MAX_NODES", "MAX_CHANNELS",
           "MAX_KERNEL", "MAX_RESOLUTION", "MAX_CLASSES", "MAX_CHOICES", "MAX_MADDS",
           "MAX_PARAMS"]

MAX_FILE_BYTES = 1 << 20  # a genotype, space or profile YAML file; the zoo's largest is 3 KB
MAX_NESTING = 32  # nested YAML lists and mappings; a genotype needs 7, a space 3
MAX_CELLS = 2_000  # cells in a network (its stages' depths summed); ResNet-1202 has 600
MAX_NODES = 64  # nodes in one cell; NASNet's cells have about 15, the zoo's at most 8
MAX_CHANNELS = 1 << 16  # channels of any layer; EfficientNet-B7's widest has 2,560
MAX_KERNEL = 31  # convolution kernel side; RepLKNet's 31 x 31 is the largest in use
MAX_RESOLUTION = 4_096  # input side in pixels; ImageNet networks take 224 to 600
MAX_CLASSES = 1_000_000  # classifier outputs; ImageNet-21k has 21,841
MAX_CHOICES = 1_000  # choices of a search space's decisions, summed; `cells` has 63
# The cost ceiling, checked whenever a genotype is validated: 27,000 times EfficientNet-B7's
# 37e9 multiply-adds and 10,000 times the largest CNNs' parameters (BiT-L: 0.93e9), and about
# 450 times the largest network the `cells` space can decode (2.2e12 multiply-adds, 2.4e10
# parameters: every stage at its widest and deepest, dense links, expand 6), so a search
# space's proposal is never refused by it. Past it, a network is a typo or an attack, and a
# float would soon overflow.
MAX_MADDS = 10**15
MAX_PARAMS = 10**13
