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


def describe(op: ir.ops.OpModel) -> str:
    """A short, readable description of one op: ``conv 7x7/2``, ``maxpool 3x3/2 ceil``
    (each op's own, ``compiler.ops``)."""
    return op.describe()


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
        if isinstance(node, ir.Concat) and node.join != "cat":  # an element-wise join's row
            scales = "".join(f" x{s:g}" if s != 1 else "" for s in node.scales)
            name = f"{path}.<{node.join}>".lstrip(".")
            result.append(Row(name, node.join + scales, node.out_shape, 0, 0, depth, True))
            continue
        if isinstance(node, (ir.Concat, ir.Group, ir.Fork)):
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
