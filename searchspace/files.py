"""Shipped YAML files reached by name, or any YAML file by path (spaces, profiles), read within
the limits of ``searchspace.limits``: one line for a file too big, unreadable, not UTF-8, nested
too deep or using aliases, never a traceback or a hang."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from searchspace.limits import MAX_FILE_BYTES, MAX_NESTING

__all__ = ["names_in", "load_named_yaml", "read_yaml_text", "parse_yaml", "cache_dir"]


def cache_dir() -> Path:
    """The project's cache: ``$NAS_CACHE_DIR``, by default ``~/.cache/nas`` (decoded images,
    downloads, latency tables)."""
    return Path(os.environ.get("NAS_CACHE_DIR", Path.home() / ".cache" / "nas"))


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
    return path, parse_yaml(read_yaml_text(path, error), error, f"{path}: ")


def read_yaml_text(path: Path, error: type[Exception]) -> str:
    """The text of a YAML file; ``error`` when it is too big, unreadable or not UTF-8.

    The size is checked before anything is read (and again while reading: /proc files and
    pipes report no size).
    """
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise error(f"{path}: {_too_big(path.stat().st_size)}")
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise error(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if len(data) > MAX_FILE_BYTES:
        raise error(f"{path}: {_too_big(len(data))}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text (byte {exc.start}: {data[exc.start]:#04x})") \
            from None


def parse_yaml(text: str, error: type[Exception], prefix: str = "") -> Any:
    """``yaml.safe_load`` of ``text`` within the limits; ``error`` (starting with ``prefix``)
    when the text is too big, not YAML, nested too deep, uses aliases or unknown tags."""
    size = len(text.encode("utf-8", "replace"))
    if size > MAX_FILE_BYTES:
        raise error(f"{prefix}{_too_big(size)}")
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader: never constructs objects
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise error(f"{prefix}not valid YAML{where}: {problem}") from None
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits, a 13th month
        raise error(f"{prefix}not valid YAML: {' '.join(str(exc).split())[:200]}") from None


def _too_big(size: int) -> str:
    return f"{size:,} bytes, over the limit of {MAX_FILE_BYTES:,} for a YAML file"


if yaml.__with_libyaml__:
    class _Base(yaml.composer.Composer, yaml.cyaml.CParser, yaml.constructor.SafeConstructor,
                yaml.resolver.Resolver):
        """``yaml.SafeLoader`` on libyaml's parser (three times faster), composed in Python
        so that ``_Loader`` can check every node."""

        def __init__(self, stream: str) -> None:
            yaml.cyaml.CParser.__init__(self, stream)
            yaml.composer.Composer.__init__(self)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)
else:  # pragma: no cover - PyYAML built without libyaml
    _Base = yaml.SafeLoader


class _Loader(_Base):
    """``yaml.SafeLoader`` without aliases (a few lines of them expand to billions of
    elements), at most MAX_NESTING levels deep (deeper ones overflow Python's stack), and with
    integers of at most 64 bits (a 0x... of a million digits parses, but cannot be printed)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed",
                                              self.peek_event().start_mark)
        if self._depth >= MAX_NESTING:
            raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_NESTING} "
                                              "levels", self.peek_event().start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        try:
            value = super().construct_yaml_int(node)
        except ValueError:  # more than 4,300 decimal digits
            value = 1 << 64
        if value.bit_length() > 64:
            raise yaml.constructor.ConstructorError(
                None, None, f"integer {node.value[:20]}... does not fit in 64 bits",
                node.start_mark)
        return value


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)
