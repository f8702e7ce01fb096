"""Training recipes (profiles): explicit dataclasses loaded from ``profiles/*.yaml``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from searchspace.files import load_named_yaml, names_in

__all__ = ["Recipe", "RecipeError", "load_profile", "profile_names"]

_DIR = Path(__file__).parent / "profiles"


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
    val_size: int = 5000  # validation images held out of the training images (search split)
    holdout: float = 0.4  # fraction of those kept from the search, for proxy-level reports
    width_mult: float = 1.0  # channels x this during the proxy (search profiles only)
    resolution: int = 0  # input side during the proxy; 0 = the genotype's own
    eval_batch_size: int = 1000
    time_limit: float = 0.0  # a search fails a candidate that would train longer; 0 = none
    device: str = ""  # "cpu" or "cuda"; empty = CUDA when present

    def __post_init__(self) -> None:
        if self.split not in ("search", "final"):
            raise RecipeError(f"{self.name}: split must be 'search' or 'final'")
        if self.decay not in ("linear", "cosine"):
            raise RecipeError(f"{self.name}: decay must be 'linear' or 'cosine'")
        if not 0 <= self.holdout < 1:
            raise RecipeError(f"{self.name}: holdout is a fraction of the validation images, "
                              "from 0 up to (not including) 1")
        if self.epochs <= 0 or self.batch_size < 1 or self.lr <= 0:
            raise RecipeError(f"{self.name}: epochs, batch_size and lr must be positive")

    def replace(self, **changes: Any) -> Recipe:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


def profile_names() -> list[str]:
    """The profiles shipped with the package."""
    return names_in(_DIR)


def load_profile(name_or_path: str | Path) -> Recipe:
    """A shipped profile by name, or a profile YAML file by path."""
    path, data = load_named_yaml(name_or_path, _DIR, "profile", RecipeError)
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: expected a mapping of recipe fields")
    known = {f.name for f in fields(Recipe)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise RecipeError(f"{path}: unknown field {unknown[0]!r} "
                          f"(known: {', '.join(sorted(known))})")
    data.setdefault("name", path.stem)
    try:
        return Recipe(**data)
    except TypeError as exc:
        raise RecipeError(f"{path}: {exc}") from None
