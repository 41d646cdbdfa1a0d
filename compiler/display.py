"""How IR values read to a person: shapes, short op descriptions, and the
per-layer rows of the summary table (and of its JSON, and of ``netc diff``).

Shared by the backends and the CLI, so that no backend imports another;
plain data, no dependencies beyond the IR.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from compiler import ir


def show_shape(shape: ir.Shape) -> str:
    """``N x 64 x 112 x 112``: the batch dimension first, as PyTorch sees it."""
    return " x ".join(["N", *map(str, shape)])


def _pair(p: ir.Pair) -> str:
    return str(p[0]) if p[0] == p[1] else f"{p[0]}x{p[1]}"


def describe(op) -> str:
    """A short, readable description of one op: ``conv 7x7/2``, ``maxpool 3x3/2 ceil``."""
    kind = op.op
    if kind == "fused_conv":  # deploy: ``conv 1x1 +bn +relu (3 fused)``
        text = describe(ir.Conv(**op.model_dump(exclude={"op", "relu", "sources"})))
        text += " +bn" * any(s.bn for s in op.sources) + " +relu" * op.relu
        return text + (f" ({len(op.sources)} fused)" if len(op.sources) > 1 else "")
    if kind in ("conv", "maxpool", "avgpool"):
        k = op.kernel_size
        text = f"{kind} {k[0]}x{k[1]}"
        if op.stride != (1, 1):
            text += f"/{_pair(op.stride)}"
        if getattr(op, "groups", 1) != 1:
            text += f" g{op.groups}"
        if getattr(op, "ceil_mode", False):
            text += " ceil"
        return text
    if kind in ("dropout", "dropout2d"):
        return f"{kind} {op.p:g}"
    if kind == "adaptive_avgpool":
        return f"adaptive_avgpool {op.output_size[0]}x{op.output_size[1]}"
    if kind == "lrn":
        return f"lrn {op.size}"
    return kind


def use_colour() -> bool:
    """Whether rich may style its output: not when NO_COLOR is set (no-color.org),
    which netc takes to mean plain text, bold and italics too; rich itself adds
    no styles when stdout is not a terminal."""
    return not os.environ.get("NO_COLOR")


# -- per-layer rows (the summary table, its JSON, and diff) --------------------------------------


@dataclass(frozen=True)
class Row:
    name: str
    kind: str
    shape: ir.Shape
    params: int
    macs: int
    depth: int
    leaf: bool


def rows(nodes: tuple[ir.Node, ...], prefix: str = "", enabled=lambda guard: True) -> list[Row]:
    result = []
    for path, node, depth in ir.walk(nodes, prefix):
        if isinstance(node, (ir.Concat, ir.Fork)):
            continue
        if isinstance(node, ir.Layer):
            if not enabled(node.guard):
                continue
            name = path if node.name is not None else f"{path}.<{node.op.op}>".lstrip(".")
            result.append(
                Row(name, describe(node.op), node.out_shape, node.params, node.macs, depth, True)
            )
        else:
            kind = node.block if isinstance(node, ir.Block) else "sequential"
            sub = (node,)
            result.append(
                Row(
                    path,
                    kind,
                    node.out_shape,
                    ir.total_params(sub),
                    ir.total_macs(sub),
                    depth,
                    False,
                )
            )
    return result
