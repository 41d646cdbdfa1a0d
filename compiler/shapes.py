"""Shape inference: exact PyTorch output-size arithmetic, parameters and MACs.

Each op's rule is its own (``compiler.ops``): ``op.infer(shape)`` gives the
output shape or raises ``ShapeError`` with a message that elaboration turns
into a file:line:col error at the layer's call.
"""

from __future__ import annotations

from compiler import ir
from compiler.ops.base import ShapeError, conv_out, pool_out, show

__all__ = ["ShapeError", "conv_out", "infer", "onednn_unsafe", "pool_out", "show"]


def infer(op: ir.ops.OpModel, shape: ir.Shape) -> tuple[ir.Shape, int, int]:
    """Output shape, parameter count and multiply-accumulates of one layer."""
    out = op.infer(shape)
    return out, op.params(), op.macs(out)


def onednn_unsafe(op) -> bool:
    """A convolution that crashes (SIGSEGV) PyTorch's channels_last kernel and
    oneDNN's fused convolution on CPU (torch 2.13): dilated and strided, with a
    padding at least the dilated kernel extent in some dimension, e.g.
    ``conv(4, 1, stride=(1, 2), padding=1, dilation=2)`` on a 1x1 input.
    Conservative: the deploy build keeps such a convolution on the plain path."""
    if op.padding == "same":
        return False
    return (
        op.dilation != (1, 1)
        and op.stride != (1, 1)
        and any(p >= d * (k - 1) + 1 for k, p, d in zip(op.kernel_size, op.padding, op.dilation))
    )
