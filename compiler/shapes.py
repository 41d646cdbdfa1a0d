"""Shape inference: exact PyTorch output-size arithmetic, parameters and MACs.

One table entry per op kind (``RULES``). Each rule takes the op and its input
shape and returns the output shape, or raises ``ShapeError`` with a message
that elaboration turns into a file:line:col error at the layer's call.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from compiler import ir


class ShapeError(ValueError):
    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


def show(shape: ir.Shape) -> str:
    return "x".join(str(d) for d in shape)


def _feature_map(shape: ir.Shape, what: str) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ShapeError(
            f"{what} needs a C x H x W feature map, got a flat vector of {shape[0]} features"
        )
    return shape


def _check_positive(what: str, out_h: int, out_w: int, in_h: int, in_w: int) -> None:
    if out_h <= 0 or out_w <= 0:
        raise ShapeError(
            f"{what} output would be {out_h}x{out_w}: the {in_h}x{in_w} input is too small",
            hint="reduce the kernel or stride, add padding, or use a larger input",
        )


def conv_out(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def pool_out(
    size: int, kernel: int, stride: int, padding: int, dilation: int, ceil_mode: bool
) -> int:
    """PyTorch's pooling size, including the ceil_mode rule that the last
    window must start inside the input (or its left padding)."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    out = (math.ceil(span / stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def _conv(op: ir.Conv, shape: ir.Shape) -> ir.Shape:
    _, h, w = _feature_map(shape, "conv")
    if op.in_channels % op.groups or op.out_channels % op.groups:
        raise ShapeError(
            f"groups={op.groups} must divide both in_channels={op.in_channels} "
            f"and out_channels={op.out_channels}"
        )
    if op.padding == "same":
        if op.stride != (1, 1):
            raise ShapeError("padding=same needs stride=1", hint="use an explicit padding")
        return (op.out_channels, h, w)
    dims = [
        conv_out(size, k, s, p, d)
        for size, k, s, p, d in zip((h, w), op.kernel_size, op.stride, op.padding, op.dilation)
    ]
    _check_positive("conv", dims[0], dims[1], h, w)
    return (op.out_channels, *dims)


def _pool(op: ir.MaxPool | ir.AvgPool, shape: ir.Shape) -> ir.Shape:
    c, h, w = _feature_map(shape, op.op)
    dilation = getattr(op, "dilation", (1, 1))
    for k, p in zip(op.kernel_size, op.padding):
        if p > k // 2:  # PyTorch's rule: half the kernel, whatever the dilation
            raise ShapeError(
                f"padding={p} is more than half the kernel size {k}",
                hint="PyTorch allows padding of at most kernel_size // 2",
            )
    dims = [
        pool_out(size, k, s, p, d, op.ceil_mode)
        for size, k, s, p, d in zip((h, w), op.kernel_size, op.stride, op.padding, dilation)
    ]
    _check_positive(op.op, dims[0], dims[1], h, w)
    return (c, *dims)


def _adaptive(op: ir.AdaptiveAvgPool, shape: ir.Shape) -> ir.Shape:
    c, _, _ = _feature_map(shape, "adaptive_avgpool")
    return (c, *op.output_size)


def _same(what: str | None = None) -> Callable[[object, ir.Shape], ir.Shape]:
    def rule(op, shape: ir.Shape) -> ir.Shape:
        if what:
            _feature_map(shape, what)
        return shape

    return rule


def _batchnorm(op: ir.BatchNorm, shape: ir.Shape) -> ir.Shape:
    _feature_map(shape, "batchnorm")
    return shape


def _scale_shift(op: ir.ScaleShift, shape: ir.Shape) -> ir.Shape:
    _feature_map(shape, "scale_shift")  # its constants broadcast as 1 x C x 1 x 1
    if len(op.scale) != shape[0] or len(op.shift) != shape[0]:
        raise ShapeError(
            f"scale_shift has {len(op.scale)} scales and {len(op.shift)} shifts "
            f"for {shape[0]} channels"
        )
    return shape


def _softmax(op: ir.Softmax, shape: ir.Shape) -> ir.Shape:
    rank = len(shape) + 1  # with the batch dimension
    if not -rank <= op.dim < rank:
        raise ShapeError(
            f"softmax dim={op.dim} is out of range for an N x {' x '.join(map(str, shape))} tensor",
            hint=f"dim must be between {-rank} and {rank - 1}",
        )
    return shape


def _flatten(op: ir.Flatten, shape: ir.Shape) -> ir.Shape:
    return (math.prod(shape),)


def _linear(op: ir.Linear, shape: ir.Shape) -> ir.Shape:
    if len(shape) != 1:
        raise ShapeError(
            f"linear needs a flat input, got a {show(shape)} feature map",
            hint="add flatten before it",
        )
    return (op.out_features,)


@dataclass(frozen=True)
class Rule:
    shape: Callable[..., ir.Shape]
    params: Callable[..., int] = lambda op: 0
    macs: Callable[..., int] = lambda op, out: 0


def _conv_weights(op: ir.Conv) -> int:
    return op.out_channels * (op.in_channels // op.groups) * math.prod(op.kernel_size)


RULES: dict[str, Rule] = {
    "conv": Rule(
        _conv,
        params=lambda op: _conv_weights(op) + (op.out_channels if op.bias else 0),
        macs=lambda op, out: _conv_weights(op) * out[1] * out[2],
    ),
    "batchnorm": Rule(_batchnorm, params=lambda op: 2 * op.num_features),
    "relu": Rule(_same()),
    "maxpool": Rule(_pool),
    "avgpool": Rule(_pool),
    "adaptive_avgpool": Rule(_adaptive),
    "lrn": Rule(_same("lrn")),
    "dropout": Rule(_same()),
    "dropout2d": Rule(_same("dropout2d")),
    "flatten": Rule(_flatten),
    "linear": Rule(
        _linear,
        params=lambda op: op.in_features * op.out_features + (op.out_features if op.bias else 0),
        macs=lambda op, out: op.in_features * op.out_features,
    ),
    "softmax": Rule(_softmax),
    "scale_shift": Rule(_scale_shift),
    # deploy only (compiler.passes): a convolution, whatever was folded into it
    "fused_conv": Rule(
        _conv,
        params=lambda op: _conv_weights(op) + (op.out_channels if op.bias else 0),
        macs=lambda op, out: _conv_weights(op) * out[1] * out[2],
    ),
}


def infer(op, shape: ir.Shape) -> tuple[ir.Shape, int, int]:
    """Output shape, parameter count and multiply-accumulates of one layer."""
    rule = RULES[op.op]
    out = rule.shape(op, shape)
    return out, rule.params(op), rule.macs(op, out)
