"""Pooling: max, average, adaptive average (and its ``global_avgpool`` alias)."""

from __future__ import annotations

from typing import Annotated, Literal, cast

from compiler.ops.base import (
    BOOL,
    PAIR,
    SAME_AS_KERNEL,
    Arg,
    OpModel,
    Pair,
    Shape,
    ShapeError,
    Torch,
    alias,
    check_positive,
    feature_map,
    pair_text,
    pool_out,
    register,
)

Positive = Annotated[Pair, Arg(PAIR, min=1)]
Stride = Annotated[Pair, Arg(PAIR, min=1, default=SAME_AS_KERNEL, doc="the kernel size by default")]
Padding = Annotated[Pair, Arg(PAIR, min=0)]
Flag = Annotated[bool, Arg(BOOL)]


class _Pool(OpModel):
    """What max and average pooling share: the rule and the description."""

    def infer(self, shape: Shape) -> Shape:
        op = cast("MaxPool | AvgPool", self)
        c, h, w = feature_map(shape, op.op)
        dilation = op.dilation if isinstance(op, MaxPool) else (1, 1)
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
        check_positive(op.op, dims[0], dims[1], h, w)
        return (c, *dims)

    def describe(self) -> str:
        op = cast("MaxPool | AvgPool", self)
        k = op.kernel_size
        text = f"{op.op} {k[0]}x{k[1]}"
        if op.stride != (1, 1):
            text += f"/{pair_text(op.stride)}"
        return text + " ceil" * op.ceil_mode


@register
class MaxPool(_Pool):
    """2-d max pooling."""

    op: Literal["maxpool"] = "maxpool"
    kernel_size: Positive
    stride: Stride
    padding: Padding = (0, 0)
    dilation: Positive = (1, 1)
    ceil_mode: Flag = False

    torch = Torch("MaxPool2d", "F.max_pool2d", positional=1, kernel_default=("stride",))
    example = ({"kernel_size": (3, 3), "stride": (2, 2), "padding": (1, 1), "ceil_mode": True},
               (2, 8, 7))  # fmt: skip


@register
class AvgPool(_Pool):
    """2-d average pooling."""

    op: Literal["avgpool"] = "avgpool"
    kernel_size: Positive
    stride: Stride
    padding: Padding = (0, 0)
    ceil_mode: Flag = False
    count_include_pad: Flag = True

    torch = Torch("AvgPool2d", "F.avg_pool2d", positional=1, kernel_default=("stride",))
    example = ({"kernel_size": (3, 2), "stride": (1, 1), "padding": (1, 0),
                "count_include_pad": False}, (2, 6, 6))  # fmt: skip


@register
class AdaptiveAvgPool(OpModel):
    """Average pooling to a fixed output size."""

    op: Literal["adaptive_avgpool"] = "adaptive_avgpool"
    output_size: Positive

    torch = Torch("AdaptiveAvgPool2d", "F.adaptive_avg_pool2d", positional=1)
    example = ({"output_size": (2, 3)}, (3, 7, 9))

    def infer(self, shape: Shape) -> Shape:
        c, _, _ = feature_map(shape, "adaptive_avgpool")
        return (c, *self.output_size)

    def describe(self) -> str:
        return f"adaptive_avgpool {self.output_size[0]}x{self.output_size[1]}"


alias(
    "global_avgpool",
    AdaptiveAvgPool,
    "Average pooling to 1x1: one value per channel.",
    output_size=(1, 1),
)
