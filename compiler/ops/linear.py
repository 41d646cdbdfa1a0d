"""From feature maps to vectors: flatten, and fully connected layers."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from compiler.ops.base import BOOL, INT, Arg, OpModel, Shape, ShapeError, Torch, register, show


@register
class Flatten(OpModel):
    """C x H x W to C*H*W features."""

    op: Literal["flatten"] = "flatten"

    torch = Torch("Flatten", "torch.flatten", extra=(1,))  # torch.flatten(x, 1), as nn.Flatten
    example = ({}, (2, 3, 4))

    def infer(self, shape: Shape) -> Shape:
        return (math.prod(shape),)


@register
class Linear(OpModel):
    """Fully connected layer; in_features is inferred."""

    op: Literal["linear"] = "linear"
    in_features: Annotated[int, Arg(INT, min=1, inferred=True)]
    out_features: Annotated[int, Arg(INT, min=1, produces=True)]
    bias: Annotated[bool, Arg(BOOL)] = True

    torch = Torch("Linear", positional=2)
    example = ({"in_features": 12, "out_features": 5}, (12,))
    stateful = True

    def infer(self, shape: Shape) -> Shape:
        if len(shape) != 1:
            raise ShapeError(
                f"linear needs a flat input, got a {show(shape)} feature map",
                hint="add flatten before it",
            )
        return (self.out_features,)

    def params(self) -> int:
        return self.in_features * self.out_features + (self.out_features if self.bias else 0)

    def macs(self, out: Shape) -> int:
        return self.in_features * self.out_features
