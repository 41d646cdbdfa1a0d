"""Shape inference: exact PyTorch output-size arithmetic, parameters and MACs.

Each op's rule is its own (``compiler.ops``): ``op.infer(shape)`` gives the
output shape or raises ``ShapeError`` with a message that elaboration turns
into a file:line:col error at the layer's call.
"""

from __future__ import annotations

from compiler import ir
from compiler.ops.base import ShapeError, conv_out, pool_out, show

__all__ = ["ShapeError", "conv_out", "infer", "pool_out", "show"]


def infer(op: ir.ops.OpModel, shape: ir.Shape) -> tuple[ir.Shape, int, int]:
    """Output shape, parameter count and multiply-accumulates of one layer."""
    out = op.infer(shape)
    return out, op.params(), op.macs(out)
