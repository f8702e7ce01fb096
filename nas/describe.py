"""`nas info` and `nas zoo`: what a network is and what it costs."""

from __future__ import annotations

import json
from typing import Any

import searchspace
from nas.report_table import human, table
from searchspace.genotype import pruned_cell

__all__ = ["info", "info_dict", "zoo_table"]


def _rows(c: searchspace.Cost) -> list[dict[str, Any]]:
    """One row per op: the layers of a node (conv + BN, say) counted together."""
    rows: list[dict[str, Any]] = []
    for layer in c.layers:
        owner = layer.name.rsplit(".", 1)[0]
        if rows and rows[-1]["layer"] == owner:
            row = rows[-1]
            row["kind"] += f"+{layer.kind}"
            if layer.kind != "BatchNorm2d":
                row["shape"] = list(layer.shape)
        else:
            row = {"layer": owner, "kind": layer.kind, "shape": list(layer.shape),
                   "params": 0, "madds": 0}
            rows.append(row)
        row["params"] += layer.params
        row["madds"] += layer.madds
    return rows


def info_dict(g: searchspace.Genotype, latency: str | None = None) -> dict[str, Any]:
    """The JSON form of `nas info`; ``latency``: a table to predict its latency from."""
    c = searchspace.cost(g)
    d = {"name": g.name, "key": g.key(), "resolution": g.resolution,
         "num_classes": g.num_classes, "params": c.params, "madds": c.madds,
         "layers": _rows(c)}
    if latency:
        from nas.latency_cmd import prepare

        p = prepare(latency)
        d["latency_ms"] = round(p.predict(g), 4)
        d["latency_on"] = p.table.describe()
    return d


def info(g: searchspace.Genotype, as_json: bool, latency: str | None = None) -> str:
    """A Keras-style summary: layer, kind, output shape, parameters, multiply-adds; totals."""
    d = info_dict(g, latency)
    if as_json:
        return json.dumps(d)
    rows = [(r["layer"], r["kind"], "x".join(map(str, r["shape"])), f"{r['params']:,}",
             f"{r['madds']:,}") for r in d["layers"]]
    body = table(("layer", "kind", "output", "params", "madds"), rows, right={3, 4})
    dead = _dead_nodes(g)
    note = (f"\n{dead} node(s) reach no cell output: not built, not counted (as written: "
            f"{human(searchspace.cost(g, prune=False).madds)} multiply-adds)" if dead else "")
    return (f"{g.name or 'genotype'}  (key {d['key']}, input {g.resolution}x{g.resolution}, "
            f"{g.num_classes} classes)\n{body}\n\n"
            f"parameters:     {d['params']:,} ({human(d['params'])})\n"
            f"multiply-adds:  {d['madds']:,} ({human(d['madds'])})" + _latency_line(d) + note)


def _latency_line(d: dict[str, Any]) -> str:
    if "latency_ms" not in d:
        return ""
    return f"\nlatency:        {d['latency_ms']:.3g} ms predicted ({d['latency_on']})"


def _dead_nodes(g: searchspace.Genotype) -> int:
    """Nodes of the written cells that pruning removes (each distinct cell counted once)."""
    cells = {c for st in g.stages for c in (st.cell, st.reduce_cell) if c is not None}
    return sum(len(c.nodes) - len(pruned_cell(c).nodes) for c in cells)


def zoo_table() -> str:
    """The zoo's networks with their costs and sources."""
    rows = []
    for name in searchspace.zoo.names():
        c = searchspace.cost(searchspace.zoo.get(name))
        source = searchspace.zoo.SOURCES.get(name, ("", 0, ""))[0]
        rows.append((name, f"{c.params:,}", human(c.madds), source))
    return table(("name", "params", "madds", "source"), rows, right={1, 2})
