"""Networks built for the user's images: the data decides the head's width and the input side.

A zoo network is a design: it is built for the data's classes at the data's image side. A
searched network whose head fits the data is used as it is (a scaled one keeps its
resolution). One made for another dataset (another class count, or a run folder that searched
images of another shape) is transferred, as NASNet moved its CIFAR-10 cell to ImageNet: the
same cells, a head for the new classes, the input side scaled from the images it was searched
on to the new ones; the line that says so gives the multiply-adds before and after.
"""

from __future__ import annotations

import json
from pathlib import Path

import evaluators
import searchspace
from evaluators.data import DataInfo

__all__ = ["zoo_for", "for_data", "fitted", "searched_shape", "add_data_flags", "data_source"]


def add_data_flags(parser, more: str = "",
                   default: str = "$NAS_DATA, the cache, a download of CIFAR-10") -> None:
    """``--data`` and ``--resize`` on a command that reads images."""
    parser.add_argument("--data", help="the images: an image-folder tree or archive "
                                       "(train/<class>/*, test/<class>/*) or CIFAR-10's "
                                       f"official archive (default: {default}){more}")
    parser.add_argument("--resize", type=int, metavar="SIDE",
                        help="resize every image to SIDE x SIDE (its shorter side, then the "
                             "centre square): for images of several sizes")


def data_source(args) -> str | None:
    """The data a command's ``--data`` and ``--resize`` name, as one string."""
    if args.resize is None:
        return args.data
    return evaluators.data.with_resize(args.data, args.resize)


def zoo_for(name: str, info: DataInfo | None) -> searchspace.Genotype:
    """The zoo network ``name`` built for the data (as it is without data)."""
    g = searchspace.zoo.get(name)
    return g if info is None else g.replace(num_classes=info.num_classes, resolution=info.side)


def searched_shape(arg: str) -> tuple[int, int] | None:
    """(classes, side) of the images a `nas train -o` checkpoint was trained on, or a run
    folder searched (for the folder or a genotype file in it); None for anything else."""
    if Path(arg).suffix in (".pt", ".pth") and Path(arg).is_file():
        from nas.standalone import checkpoint_info

        kept = checkpoint_info(arg)
        return (len(kept["classes"]), int(kept["side"])) if kept.get("side") else None
    folder = Path(arg) if Path(arg).is_dir() else Path(arg).parent
    path = folder / "config.json"
    if not Path(arg).exists() or not path.is_file():
        return None
    try:
        shape = json.loads(path.read_text()).get("shape")
    except (OSError, ValueError, AttributeError):
        return None
    return tuple(shape) if isinstance(shape, list) and len(shape) == 2 else None


def for_data(g: searchspace.Genotype, info: DataInfo, searched: tuple[int, int] | None = None
             ) -> tuple[searchspace.Genotype, str]:
    """``g`` for the data, and a line saying what changed ("" when nothing did).

    Args:
        searched: (classes, side) of the images ``g`` was made for, when known (a run
            folder's or a checkpoint's); else a head of another width tells another dataset,
            and CIFAR-10's 32x32 is assumed for the side it was made for.
    """
    same_head = g.num_classes == info.num_classes
    if same_head and (searched is None or tuple(searched) == (info.num_classes, info.side)):
        return g, ""
    from_side = searched[1] if searched else 32  # nothing says: CIFAR-10's, the default
    moved = g.replace(num_classes=info.num_classes,
                      resolution=max(1, round(g.resolution * info.side / from_side)))
    before, after = searchspace.cost(g).madds, searchspace.cost(moved).madds
    origin = f"made for {searched[0]}-class {searched[1]}x{searched[1]} images" \
        if searched else f"built for {g.num_classes} classes (32x32 images assumed)"
    return moved, (f"{g.name or 'the network'}: {origin}; transferred to the "
                   f"{info.num_classes} classes of {info.source} at "
                   f"{moved.resolution}x{moved.resolution} (the same cells, a new head): "
                   f"{before / 1e6:.1f}M -> {after / 1e6:.1f}M multiply-adds")


def fitted(arg: str, g: searchspace.Genotype, info: DataInfo
           ) -> tuple[searchspace.Genotype, str]:
    """The network a command names as ``arg`` (resolved to ``g``) for the data: a zoo name
    built for it, anything else by ``for_data`` (made for the images a checkpoint or a run
    folder records, when its head is theirs; else for CIFAR-10's 32x32)."""
    if not Path(arg).exists() and arg in searchspace.zoo.names():
        return zoo_for(arg, info), ""
    made_for = searched_shape(arg)
    if made_for is not None and made_for[0] != g.num_classes:  # not the run's own network
        made_for = None
    return for_data(g, info, made_for)
