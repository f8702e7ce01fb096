"""Export: a standalone .py model (needs only torch), torch.export (.pt2) or ONNX.

The .py file holds the framework's own op classes (copied from their source, so they compute
exactly the same thing), one readable nn.Module per distinct cell whose forward is written out
node by node, the network around them with the builder's module names (state_dicts load both
ways), ``build_model(weights=None)``, ``RESOLUTION`` and ``NUM_CLASSES``.
"""

from __future__ import annotations

import inspect
import textwrap
from pathlib import Path
from typing import Any

import torch

import searchspace
from evaluators.data import MEAN, STD, DataInfo
from nas.errors import UserError
from searchspace import builder, ops
from searchspace.genotype import Cell, Node
from searchspace.layout import CellPlan, layout

__all__ = ["export_source", "write_export", "load_weights", "build_with_weights",
           "checkpoint_info"]

# Runtime pieces every export needs, copied verbatim (same code, same numbers); each op used
# adds its own (the registry's ``runtime``).
_RUNTIME = [ops.activation, ops.channels, builder.Stem, builder.PadShortcut,
            builder.ProjectShortcut, builder.PoolProject, builder.shortcut, builder.Head]


def _runtime_source(g: searchspace.Genotype) -> str:
    used = [obj for name in sorted(_ops_used(g)) for obj in ops.get(name).runtime]
    objs = list(dict.fromkeys(used + _RUNTIME))  # each once, op classes first
    return "\n\n\n".join(textwrap.dedent(inspect.getsource(obj)).rstrip() for obj in objs)


def _ops_used(g: searchspace.Genotype) -> set[str]:
    return {spec.node.op for cp in layout(g).cells for spec in cp.specs}


def _node_expr(node: Node, c: str, stride: str) -> str:
    """Constructor call for one node, given the expressions of its input channels and stride;
    an op the registry does not know fails here, loudly."""
    return ops.get(node.op).export(node, c, _out_expr(node, c), stride if node.strided else "1")


def _base(node: Node) -> str:
    return "width" if node.width_of == "out" else "c_in"


def _out_expr(node: Node, c: str) -> str:
    if node.width is None or not ops.get(node.op).widens:
        return c
    return f"channels({node.width!r}, {_base(node)})"


def _merge_expr(names: list[str], how: str) -> str:
    if len(names) == 1:
        return names[0]
    if how == "concat":
        return f"torch.cat([{', '.join(names)}], 1)"
    return " + ".join(names)


def _cell_class(name: str, cell: Cell) -> str:
    """A readable nn.Module for one distinct cell."""
    doc = textwrap.wrap(_describe(cell), 88)
    init = [f"class {name}(nn.Module):",
            '    """' + "\n    ".join(doc) + ('\n    """' if len(doc) > 1 else '"""'),
            "",
            "    def __init__(self, c_in: int, width: int, stride: int) -> None:",
            "        super().__init__()",
            "        c0 = c_in"]
    fwd = ["    def forward(self, x0: torch.Tensor) -> torch.Tensor:"]
    for i, node in enumerate(cell.nodes, start=1):
        ins = [f"c{n}" for n in node.inputs]
        c_expr = ins[0] if len(ins) == 1 or node.combine == "add" else " + ".join(ins)
        c_arg = f"({c_expr})" if "+" in c_expr else c_expr
        init.append(f"        self.n{i} = {_node_expr(node, c_arg, 'stride')}")
        out = _out_expr(node, c_arg)
        init.append(f"        c{i} = {out}")
        merged = _merge_expr([f"x{n}" for n in node.inputs], node.combine)
        fwd.append(f"        x{i} = self.n{i}({merged})")
    outs = [f"c{n}" for n in cell.outputs]
    c_out = outs[0] if len(outs) == 1 or cell.combine == "add" else " + ".join(outs)
    init.append(f"        self.shortcut = shortcut({cell.residual!r}, c_in, {c_out}, stride)")
    init.append(f"        self.act = activation({cell.act!r})")
    fwd.append(f"        out = {_merge_expr([f'x{n}' for n in cell.outputs], cell.combine)}")
    fwd.append("        if self.shortcut is not None:")
    fwd.append("            out = out + self.shortcut(x0)")
    fwd.append("        return self.act(out)")
    return "\n".join(init + [""] + fwd)


def _describe(cell: Cell) -> str:
    ops_ = ", ".join(f"n{i}={n.op}{n.kernel if 'kernel' in ops.get(n.op).uses else ''}"
                     for i, n in enumerate(cell.nodes, start=1))
    return f"{len(cell.nodes)} nodes ({ops_}); outputs {list(cell.outputs)}; " \
           f"residual {cell.residual}."


def export_source(g: searchspace.Genotype, found_by: str = "", weights_file: str = "",
                  info: DataInfo | None = None) -> str:
    """The text of a standalone .py file for ``g``; ``info``: the images it is for (their
    class names and channel statistics; CIFAR-10's statistics without it)."""
    plan = layout(g)
    classes: dict[Cell, str] = {}
    for cp in plan.cells:
        classes.setdefault(cp.cell, f"Cell{len(classes)}")
    body = [
        "from __future__ import annotations",
        "",
        "import torch",
        "from torch import nn",
        "from torch.nn import functional as F",
        "",
        f"RESOLUTION = {g.resolution}",
        f"NUM_CLASSES = {g.num_classes}",
        *_data_constants(g, info),
        "",
        "",
        _runtime_source(g),
        "",
        "",
        "\n\n\n".join(_cell_class(name, cell) for cell, name in classes.items()),
        "",
        "",
        *_network_class(g, plan, classes),
        "",
        "",
        _CHECK_INPUT,
        "",
        "",
        _BUILD_MODEL,
    ]
    return "\n".join(_docstring(g, found_by, weights_file, info) + [""] + body)


def _data_constants(g: searchspace.Genotype, info: DataInfo | None) -> list[str]:
    """CLASSES (output index -> name), MEAN and STD: the images' own, else CIFAR-10's."""
    if info is None or info.num_classes != g.num_classes:
        return ["CLASSES = None  # no data was named at export (nas export --data names them)",
                f"MEAN = {MEAN}  # CIFAR-10 per-channel mean and std of the inputs",
                f"STD = {STD}"]
    return [f"CLASSES = {tuple(info.classes)!r}  # output index -> class (folder name)",
            f"MEAN = {tuple(info.mean)}  # per-channel mean and std of the training images",
            f"STD = {tuple(info.std)}"]


def _docstring(g: searchspace.Genotype, found_by: str, weights_file: str,
               info: DataInfo | None) -> list[str]:
    """The exported file's docstring: what the network is, its cost, how to call it."""
    c = searchspace.cost(g)
    return [
        f'"""{g.name or "network"}: a standalone PyTorch model exported by nas.',
        "",
        f"Multiply-adds: {c.madds:,} ({c.madds / 1e6:.2f}M) at {g.resolution}x{g.resolution}; "
        f"parameters: {c.params:,}.",
        *textwrap.wrap(f"Found by: {found_by or 'written by hand or by the zoo'}.", 95),
        f"Genotype key: {g.key()}. Needs only torch.",
        "",
        "    model = build_model(" + (f'"{weights_file}"' if weights_file else "") + ")",
        f"    logits = model(images)  # images: (N, {g.in_channels}, {g.resolution}, "
        f"{g.resolution}), normalised per channel",
        "",
        *_input_note(g.resolution, info if info and info.num_classes == g.num_classes
                     else None),
        '"""',
    ]


def _network_class(g: searchspace.Genotype, plan, classes: dict[Cell, str]) -> list[str]:
    """``class Network``: the stem, the stages of cells in their places, the head."""
    stage_lines = []
    for s, stage in enumerate(plan.stages):
        stage_lines.append(f"            nn.Sequential(  # stage {s}")
        stage_lines += [f"                {_placement(classes, cp)}," for cp in stage]
        stage_lines.append("            ),")
    st, h = g.stem, g.head
    return [
        "class Network(nn.Module):",
        '    """stem -> stages of cells -> head."""',
        "",
        "    def __init__(self) -> None:",
        "        super().__init__()",
        "        self.resolution = RESOLUTION  # an attribute: TorchScript reads no global",
        f"        self.stem = Stem({g.in_channels}, {st.width}, {st.kernel}, {st.stride}, "
        f"{st.act!r}, {st.norm})",
        "        self.stages = nn.ModuleList([",
        *stage_lines,
        "        ])",
        f"        self.head = Head({plan.head_in[0]}, {h.width}, {h.act!r}, {h.preact}, "
        f"{h.pool!r}, {h.dropout}, NUM_CLASSES)",
        "",
        "    def forward(self, x: torch.Tensor) -> torch.Tensor:",
        "        check_input(x, self.resolution)",
        "        x = self.stem(x)",
        "        for stage in self.stages:",
        "            x = stage(x)",
        "        return self.head(x)",
    ]


_BUILD_MODEL = '''def build_model(weights: str | None = None) -> Network:
    """The network; with ``weights`` (a state_dict file, or a nas checkpoint) loaded."""
    model = Network()
    if weights is not None:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        model.load_state_dict(state.get("state_dict", state))
    return model
'''


def _input_note(resolution: int, info: DataInfo | None) -> list[str]:
    """The docstring's word on classes and input size: the images' own size, or the one a
    scaled network takes."""
    side, images = (info.side, f"the {info.side}x{info.side} images it was trained on") \
        if info else (32, "CIFAR-10's 32x32 images")
    named = textwrap.wrap(f"Classes ({info.num_classes}, output index order): "
                          f"{', '.join(info.classes)}. Data: {info.source}.", 95) if info else []
    if resolution == side:
        own = "the size of the images it was trained on" if info else "CIFAR-10's own size"
        return [*named, *textwrap.wrap(f"Input: {resolution}x{resolution} images, {own}; any "
                                       "other size raises ValueError.", 95)]
    return [*named, *textwrap.wrap(
        f"Input: {resolution}x{resolution} images, this network's resolution. {images[0].upper()}"
        f"{images[1:]} must be resized first, as nas's training does: F.interpolate(images, "
        f"size=RESOLUTION, mode='bilinear', antialias=True) after normalising. Any other size "
        "raises ValueError.", 95)]


# In the exported file: a wrong input size fails by name instead of as a shape mismatch deep
# inside (or, under global pooling, silently). Skipped while tracing (ONNX, torch.jit.trace),
# whose graphs are specialised to the example's size anyway; torch.jit.script compiles it.
_CHECK_INPUT = '''def check_input(x: torch.Tensor, side: int) -> None:
    """ValueError unless ``x`` is a batch of ``side`` x ``side`` images."""
    if torch.jit.is_tracing():
        return
    if x.dim() != 4 or x.shape[2] != side or x.shape[3] != side:
        raise ValueError(
            f"expected images of shape (N, C, {side}, {side}), got {list(x.shape)}: resize "
            f"them to {side}x{side} first (F.interpolate(images, size={side}, "
            "mode='bilinear', antialias=True))")'''


def _placement(classes: dict[Cell, str], cp: CellPlan) -> str:
    return f"{classes[cp.cell]}({cp.c_in}, {_width(cp)}, {cp.stride})"


def _width(cp: CellPlan) -> int:
    """The stage width that this cell's ratios multiply (recovered from its specs)."""
    for spec in cp.specs:
        if spec.node.width_of == "out":
            return spec.base
    return cp.c_out


def checkpoint_info(path: str | Path) -> dict:
    """What a `nas train -o` checkpoint records of its training (its images' classes and
    statistics among it); {} for a plain state_dict or an unreadable file."""
    try:
        data: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # load_weights says what is wrong with it
        return {}
    info = data.get("info") if isinstance(data, dict) else None
    return info if isinstance(info, dict) else {}


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """A state_dict from a `nas train -o` checkpoint or a plain state_dict file."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{path}: no such weights file")
    try:
        data: Any = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for unreadable files
        raise UserError(f"{path}: not a readable weights file ({exc.__class__.__name__})") \
            from None
    state = data.get("state_dict", data) if isinstance(data, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in state.values()):
        raise UserError(f"{path}: holds no state_dict")
    return state


def build_with_weights(g: searchspace.Genotype, weights: str | Path | None
                       ) -> torch.nn.Module:
    """The framework's model for ``g`` with ``weights`` loaded; UserError on a mismatch."""
    model = searchspace.build(g)
    if weights is not None:
        state = load_weights(weights)
        result = model.load_state_dict(state, strict=False)
        problems = list(result.missing_keys) + list(result.unexpected_keys)
        if problems:
            raise UserError(f"{weights}: weights do not match the genotype "
                            f"({len(result.missing_keys)} missing, "
                            f"{len(result.unexpected_keys)} unexpected keys, e.g. {problems[0]})")
    return model.eval()


def write_export(g: searchspace.Genotype, out: str | Path, fmt: str = "py",
                 weights: str | Path | None = None, found_by: str = "",
                 info: DataInfo | None = None) -> list[Path]:
    """Write ``g`` as ``fmt`` to ``out``; returns the files written. ``info``: the images it
    is for (the .py file names their classes and uses their statistics)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        model = build_with_weights(g, weights)
    except RuntimeError as exc:  # shape mismatches from load_state_dict
        first = str(exc).strip().splitlines()[-1].strip()
        own = " (they are a checkpoint's own network's: export that, `nas export "\
            f"{weights} --weights {weights}`)" if checkpoint_info(weights) else ""
        raise UserError(f"{weights}: weights do not match the genotype ({first}){own}") \
            from None
    if fmt == "py":
        written = []
        weights_file = ""
        if weights is not None:
            wpath = out.with_suffix(".pt")
            torch.save(model.state_dict(), wpath)
            weights_file, written = wpath.name, [wpath]
        out.write_text(export_source(g, found_by, weights_file, info))
        return [out, *written]
    example = torch.randn(1, g.in_channels, g.resolution, g.resolution)
    if fmt == "pt2":
        program = torch.export.export(model, (example,))
        torch.export.save(program, out)
        return [out]
    if fmt == "onnx":
        try:
            import onnx  # noqa: F401
        except ImportError:
            raise UserError("ONNX export needs the onnx extra: pip install 'nas-cnn[onnx]'") \
                from None
        torch.onnx.export(model, (example,), str(out), input_names=["images"],
                          output_names=["logits"], dynamo=False)
        _check_onnx(out, model, example)
        return [out]
    raise UserError(f"unknown format {fmt!r} (py, pt2 or onnx)")


def _check_onnx(path: Path, model: torch.nn.Module, example: torch.Tensor) -> None:
    try:
        import onnxruntime
    except ImportError:
        return
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"images": example.numpy()})[0]
    with torch.no_grad():
        want = model(example).numpy()
    if abs(got - want).max() > 1e-4:
        raise UserError(f"{path}: onnxruntime disagrees with PyTorch (max diff "
                        f"{abs(got - want).max():.2e})")
