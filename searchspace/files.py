"""Shipped YAML files reached by name, or any YAML file by path (spaces, profiles)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

__all__ = ["names_in", "load_named_yaml"]


def names_in(folder: Path) -> list[str]:
    """The stems of the YAML files shipped in ``folder``."""
    return sorted(p.stem for p in folder.glob("*.yaml"))


def load_named_yaml(name_or_path: str | Path, folder: Path, what: str,
                    error: type[Exception]) -> tuple[Path, Any]:
    """(path, parsed data) of ``folder/<name>.yaml`` or of a path; ``error`` names the problem.

    ``what`` is the kind of file ("space", "profile") used in the one-line messages.
    """
    path = Path(name_or_path)
    if not path.suffix:
        path = folder / f"{name_or_path}.yaml"
        if not path.is_file():
            raise error(f"unknown {what} {str(name_or_path)!r} "
                        f"(known: {', '.join(names_in(folder))}, or a YAML path)")
    if not path.is_file():
        raise error(f"{path}: no such {what} file")
    try:
        return path, yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
