"""Training recipes (profiles): explicit dataclasses loaded from ``profiles/*.yaml``."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from searchspace.files import load_named_yaml, names_in, parse_yaml
from searchspace.limits import MAX_RESOLUTION

__all__ = ["Recipe", "RecipeError", "load_profile", "profile_names", "apply_sets",
           "check_device", "HOW_IT_RUNS"]

_DIR = Path(__file__).parent / "profiles"
# fields that leave a training's numbers as they are: a rename, the guard, how it is scored in
# chunks, where and how the loop runs (layout, compilation: the same numbers up to rounding);
# a comparison's cache key and a training state's identity leave them out
HOW_IT_RUNS = ("name", "time_limit", "eval_batch_size", "device", "channels_last", "compile")


class RecipeError(ValueError):
    """A profile that does not exist or does not parse."""


@dataclass(frozen=True)
class Recipe:
    """How to train and score one network. Units are in the comments."""

    name: str
    split: str  # "search": train split, validation accuracy; "final": all train, test accuracy
    epochs: float  # passes over the training images (fractions allowed)
    batch_size: int  # images per step
    lr: float  # peak learning rate at batch_size (Nesterov SGD)
    momentum: float = 0.9
    weight_decay: float = 5e-4  # on conv and linear weights; BN and biases get none
    label_smoothing: float = 0.1
    warmup: float = 0.1  # fraction of the steps spent warming up linearly from zero
    decay: str = "linear"  # "linear" or "cosine", to zero at the last step
    ema: float = 0.0  # decay per step of the weight average scored at the end; 0 = off
    tta_flip: bool = False  # score each image and its mirror image together
    crop_pad: int = 4  # random-crop padding in pixels (0 = no crop)
    flip: bool = True  # random horizontal flips
    train_subset: int = 0  # train on this many images of the training split; 0 = all
    eval_subset: int = 0  # score on this many of the eval images (smoke checks only); 0 = all
    # validation images held out of the training images (search split): a count, at most 10%
    # of them (or 10 a class, when that is more), or a fraction (under 1)
    val_size: float = 5000
    holdout: float = 0.4  # fraction of those kept from the search, for proxy-level reports
    width_mult: float = 1.0  # channels x this during the proxy (search profiles only)
    depth_mult: float = 1.0  # cells per stage x this during the proxy (rounded up, at least 1)
    resolution: int = 0  # input side during the proxy (64 for 128-px images); 0 = the network's
    eval_batch_size: int = 1000
    time_limit: float = 0.0  # a search fails a candidate that would train longer; 0 = none
    # how the loop runs, not what it computes (benchmarks/gpu_probe.py measures which is faster)
    channels_last: bool = True  # NHWC weights and activations; false = NCHW
    compile: bool = False  # torch.compile the model (its set-up time counts in the training's)
    device: str = ""  # "cpu" or "cuda"; empty = CUDA when present

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise RecipeError(f"name: expected a string, got {self.name!r}")
        for f in fields(self):
            problem = _problem(f.name, str(f.type), getattr(self, f.name))
            if problem:
                raise RecipeError(f"{self.name}: {f.name}: {problem}")

    def replace(self, **changes: Any) -> Recipe:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def reduction(self) -> str:
        """How the proxy shrinks what it trains, in words ("" when it trains networks as they
        are): ``"cells per stage x0.2, 16x16 input"``."""
        parts = [f"{what} x{m:g}" for what, m in (("cells per stage", self.depth_mult),
                                                   ("channels", self.width_mult)) if m != 1.0]
        if self.resolution:
            parts.append(f"{self.resolution}x{self.resolution} input")
        return ", ".join(parts)


# Allowed values of each field beyond its type: (low, high, low included, high included) for
# numbers, the allowed strings otherwise. Upper ends are far past any real recipe; they keep a
# typo (epochs: 1e9) from running for ever.
_RANGES: dict[str, tuple] = {
    "epochs": (0, 10_000, False, True),
    "batch_size": (1, 1 << 16, True, True),
    "lr": (0, math.inf, False, False),  # 1e12 is allowed: a test makes training diverge
    "momentum": (0, 1, True, False),
    "weight_decay": (0, 1, True, True),
    "label_smoothing": (0, 1, True, False),
    "warmup": (0, 1, True, True),
    "ema": (0, 1, True, False),
    "crop_pad": (0, 64, True, True),
    "train_subset": (0, 10**9, True, True),
    "eval_subset": (0, 10**9, True, True),
    "val_size": (0, 10**9, False, True),
    "holdout": (0, 1, True, False),  # a fraction of the validation images
    "width_mult": (0, 64, False, True),
    "depth_mult": (0, 64, False, True),
    "resolution": (0, MAX_RESOLUTION, True, True),
    "eval_batch_size": (1, 1 << 16, True, True),
    "time_limit": (0, 10**9, True, True),  # seconds; 0 = none
    "split": ("search", "final"),
    "decay": ("linear", "cosine"),
}
_DEVICE = re.compile(r"(cpu|cuda|cuda:\d{1,4}|mps)?")  # "" = CUDA when present


def _problem(name: str, kind: str, value: Any) -> str:
    """What is wrong with ``value`` for the field ``name`` of type ``kind``; "" if nothing."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "bool" and not isinstance(value, bool):
        return f"expected true or false, got {value!r}"
    if kind == "int" and not (number and isinstance(value, int)):
        return f"expected an integer, got {value!r}"
    if kind == "float" and not number:
        return f"expected a number, got {value!r}"
    if kind == "str" and not isinstance(value, str):
        return f"expected a string, got {value!r}"
    if kind == "float" and not math.isfinite(value):
        return f"must be a finite number, got {value}"
    if name == "device" and not _DEVICE.fullmatch(value):
        return f"{value!r} is not one of cpu, cuda, cuda:N, mps (or empty: CUDA when present)"
    allowed = _RANGES.get(name)
    if allowed is None or not number and value in allowed:
        return ""
    if not number:
        return f"{value!r} is not one of {', '.join(allowed)}"
    low, high, low_in, high_in = allowed
    if (value > low or low_in and value == low) and (value < high or high_in and value == high):
        return ""
    upper = "" if high == math.inf else f" and {'at most' if high_in else 'under'} {high:,}"
    return f"must be {'at least' if low_in else 'more than'} {low}{upper}, got {value!r}"


def check_device(name: str, owner: str = "") -> str:
    """``name`` when this machine has that device ("" = CUDA when present, else the CPU);
    RecipeError naming it (and ``owner``, a profile) otherwise. Run before training: torch's
    own error is a traceback."""
    try:
        return _check_device(name)
    except RecipeError as exc:
        raise RecipeError(f"{owner}: {exc}" if owner else str(exc)) from None


def _check_device(name: str) -> str:
    problem = _problem("device", "str", name)
    if problem:
        raise RecipeError(f"device: {problem}")
    if name.startswith("cuda"):
        import torch

        count = torch.cuda.device_count()
        if int(name[5:] or 0) >= count:
            has = f"{count} CUDA device(s)" if count else "no CUDA device"
            raise RecipeError(f"device: {name!r}, but this machine has {has}")
    if name == "mps":
        import torch

        if not torch.backends.mps.is_available():
            raise RecipeError("device: 'mps', but this machine has no Apple GPU")
    return name


def apply_sets(recipe: Recipe, items: Iterable[str]) -> Recipe:
    """``recipe`` with ``KEY=VALUE`` changes (``--set``), each value read as YAML (``0.5``,
    ``true``, ``cpu``); RecipeError naming the field when a key or a value is wrong."""
    known = [f.name for f in fields(recipe)]
    changes: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or key not in known:
            raise RecipeError(f"--set {item!r}: expected KEY=VALUE with KEY one of "
                              f"{', '.join(known)}")
        changes[key] = parse_yaml(text, RecipeError, f"--set {key}: ") if text.strip() else ""
    return recipe.replace(**changes) if changes else recipe


def profile_names() -> list[str]:
    """The profiles shipped with the package."""
    return names_in(_DIR)


def load_profile(name_or_path: str | Path) -> Recipe:
    """A shipped profile by name, or a profile YAML file by path."""
    path, data = load_named_yaml(name_or_path, _DIR, "profile", RecipeError)
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: expected a mapping of recipe fields")
    known = {f.name for f in fields(Recipe)}
    unknown = sorted(map(str, set(data) - known))  # keys may be numbers too
    if unknown:
        raise RecipeError(f"{path}: unknown field {unknown[0]!r} "
                          f"(known: {', '.join(sorted(known))})")
    data.setdefault("name", path.stem)
    try:
        return Recipe(**data)
    except TypeError as exc:
        raise RecipeError(f"{path}: {exc}") from None
    except RecipeError as exc:  # "<name>: field: ...": the path names the file instead
        message = str(exc).removeprefix(f"{data['name']}: ")
        raise RecipeError(f"{path}: {message}") from None
