"""Normalisation: batch norm and local response normalisation."""

from __future__ import annotations

from typing import Annotated, Literal

from compiler.ops.base import FLOAT, INT, Arg, OpModel, Shape, Torch, feature_map, register


@register
class BatchNorm(OpModel):
    """Batch normalisation over channels; num_features is inferred."""

    op: Literal["batchnorm"] = "batchnorm"
    num_features: Annotated[int, Arg(INT, min=1, inferred=True)]
    eps: Annotated[float, Arg(FLOAT, min=0)] = 1e-5
    momentum: Annotated[float, Arg(FLOAT)] = 0.1

    torch = Torch("BatchNorm2d", positional=1)
    example = ({"num_features": 3, "eps": 1e-3}, (3, 4, 5))
    stateful = True
    keeps_shape = True

    def infer(self, shape: Shape) -> Shape:
        feature_map(shape, "batchnorm")
        return shape

    def params(self) -> int:
        return 2 * self.num_features

    def macs(self, out: Shape) -> int:
        return 0  # an affine map per element: MACs count convolutions and linear layers


@register
class LRN(OpModel):
    """Local response normalisation across channels (the paper's LRN)."""

    op: Literal["lrn"] = "lrn"
    size: Annotated[int, Arg(INT, min=1)]
    alpha: Annotated[float, Arg(FLOAT)] = 1e-4
    beta: Annotated[float, Arg(FLOAT)] = 0.75
    k: Annotated[float, Arg(FLOAT)] = 1.0

    torch = Torch("LocalResponseNorm", "F.local_response_norm", positional=1)
    example = ({"size": 3, "alpha": 2e-4, "k": 2.0}, (5, 3, 3))
    keeps_shape = True

    def infer(self, shape: Shape) -> Shape:
        feature_map(shape, "lrn")
        return shape

    def describe(self) -> str:
        return f"lrn {self.size}"
