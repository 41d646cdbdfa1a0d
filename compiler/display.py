"""How IR values read to a person: shapes and short op descriptions.

Shared by the summary table, the graph picture and the CLI; plain strings,
no dependencies beyond the IR.
"""

from __future__ import annotations

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
