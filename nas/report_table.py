"""Plain-text tables for the terminal."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["table", "human", "plain_log_axis", "images"]


def human(n: float, unit: str = "") -> str:
    """1234567 -> '1.23M'."""
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            return f"{n / div:.2f}{suffix}{unit}"
    return f"{n:g}{unit}"


def table(header: Sequence[str], rows: Sequence[Sequence[object]], right: set[int] = frozenset()
          ) -> str:
    """Columns padded to their widest cell; columns in ``right`` are right-aligned."""
    cells = [list(map(str, header))] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]

    def line(r: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(r, widths))).rstrip()

    rule = "-" * len(line(cells[0]))
    return "\n".join([line(cells[0]), rule] + [line(r) for r in cells[1:]])


def plain_log_axis(axis) -> None:
    """Log-scale tick labels as plain numbers (40, 100, 300), not 1.2x10^2."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    fmt = FuncFormatter(lambda v, _: f"{v:g}")
    axis.set_major_formatter(fmt)
    axis.set_minor_locator(LogLocator(subs=(2, 3, 5)))
    axis.set_minor_formatter(fmt)


def images(split: str) -> str:
    """The images a score was measured on, in words ("val" -> "the validation images")."""
    return {"val": "the validation images", "holdout": "the held-out validation images",
            "test": "the test images"}.get(split, f"{split} (its evaluator's scores)")
