"""Resolve what the user names as GENOTYPE: a zoo name, a YAML file, a run folder, a
`nas train -o` checkpoint (.pt), or a
NAS-Bench-201 cell string (``|nor_conv_3x3~0|+|...|``) or a NAS-Bench-Macro string
(``22212220``)."""

from __future__ import annotations

from pathlib import Path

import searchspace
from nas.errors import UserError

__all__ = ["resolve_genotype"]


def resolve_genotype(arg: str) -> searchspace.Genotype:
    """The genotype behind a CLI argument; UserError when it names nothing usable."""
    path = Path(arg)
    if path.is_dir():
        best = path / "best.yaml"
        if not best.is_file():
            raise UserError(f"{arg}: a folder, but not a run folder (no best.yaml)")
        path = best
    if path.is_file() and path.suffix in (".pt", ".pth"):
        return _checkpoint_genotype(path)
    if path.is_file():
        try:
            g = searchspace.Genotype.from_yaml(path)
        except searchspace.GenotypeError as exc:  # errors reading the file name it already
            text = str(exc)
            raise UserError(text if text.startswith(f"{path}: ") else f"{path}: {text}") \
                from None
        return g if g.name else g.replace(name=path.stem)
    if arg in searchspace.zoo.names():
        return searchspace.zoo.get(arg)
    if arg.startswith("|"):
        try:
            return searchspace.nb201.genotype(searchspace.nb201.parse_arch(arg))
        except searchspace.GenotypeError as exc:
            raise UserError(str(exc)) from None
    if len(arg) == len(searchspace.nbmacro.DECISIONS) and arg.isdigit():
        try:
            return searchspace.nbmacro.genotype(searchspace.nbmacro.parse_arch(arg))
        except searchspace.GenotypeError as exc:
            raise UserError(str(exc)) from None
    if arg.endswith((".yaml", ".yml")) or "/" in arg:
        raise UserError(f"{arg}: no such file")
    raise UserError(f"{arg!r} is neither a genotype file, a zoo network "
                    f"(zoo: {', '.join(searchspace.zoo.names())}), a NAS-Bench-201 cell "
                    "string (|op~0|+|op~0|op~1|+|op~0|op~1|op~2|) nor a NAS-Bench-Macro "
                    "string (8 digits of 0, 1, 2)")


def _checkpoint_genotype(path: Path) -> searchspace.Genotype:
    """The network a `nas train -o` checkpoint holds weights for."""
    import torch

    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
        return searchspace.Genotype.from_yaml(data["genotype"])
    except Exception as exc:  # not a checkpoint of ours: torch and YAML raise many types
        raise UserError(f"{path}: not a `nas train -o` checkpoint ({exc.__class__.__name__})"
                        ) from None
