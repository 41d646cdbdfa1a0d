"""Weightless ops that keep the shape: activations, dropout, fixed affine maps."""

from __future__ import annotations

from typing import Annotated, Literal

from compiler.ops.base import (
    BOOL,
    FLOAT,
    FLOATS,
    INT,
    Arg,
    OpModel,
    Shape,
    ShapeError,
    Torch,
    feature_map,
    register,
)

Probability = Annotated[
    float, Arg(FLOAT, min=0, max=1, error="dropout probability must be between 0 and 1")
]


InPlace = Annotated[bool, Arg(BOOL, doc="overwrite the input (not where others read it)")]


@register
class ReLU(OpModel):
    """Rectified linear unit."""

    op: Literal["relu"] = "relu"
    inplace: InPlace = False

    torch = Torch("ReLU", "F.relu")
    example = ({}, (2, 3, 3))
    keeps_shape = True


@register
class ReLU6(OpModel):
    """ReLU capped at 6 (MobileNet)."""

    op: Literal["relu6"] = "relu6"
    inplace: InPlace = False

    torch = Torch("ReLU6", "F.relu6")
    example = ({"inplace": True}, (2, 3, 3))
    keeps_shape = True


@register
class LeakyReLU(OpModel):
    """ReLU with a small slope for negative inputs."""

    op: Literal["leaky_relu"] = "leaky_relu"
    negative_slope: Annotated[float, Arg(FLOAT)] = 0.01
    inplace: InPlace = False

    torch = Torch("LeakyReLU", "F.leaky_relu")
    example = ({"negative_slope": 0.2}, (2, 3, 3))
    keeps_shape = True


@register
class Sigmoid(OpModel):
    """Logistic sigmoid (gates: squeeze-and-excitation)."""

    op: Literal["sigmoid"] = "sigmoid"

    torch = Torch("Sigmoid", "torch.sigmoid")
    example = ({}, (2, 3, 3))
    keeps_shape = True


@register
class Tanh(OpModel):
    """Hyperbolic tangent."""

    op: Literal["tanh"] = "tanh"

    torch = Torch("Tanh", "torch.tanh")
    example = ({}, (5,))
    keeps_shape = True


@register
class GELU(OpModel):
    """Gaussian error linear unit (the exact form)."""

    op: Literal["gelu"] = "gelu"

    torch = Torch("GELU", "F.gelu")
    example = ({}, (2, 3, 3))
    keeps_shape = True


@register
class SiLU(OpModel):
    """Sigmoid linear unit, x * sigmoid(x) (swish)."""

    op: Literal["silu"] = "silu"
    inplace: InPlace = False

    torch = Torch("SiLU", "F.silu")
    example = ({}, (2, 3, 3))
    keeps_shape = True


@register
class Hardswish(OpModel):
    """Piecewise-linear swish (MobileNet-v3)."""

    op: Literal["hardswish"] = "hardswish"
    inplace: InPlace = False

    torch = Torch("Hardswish", "F.hardswish")
    example = ({"inplace": True}, (2, 3, 3))
    keeps_shape = True


@register
class Identity(OpModel):
    """The input, unchanged: a residual's shortcut (``add { identity ... }``)."""

    op: Literal["identity"] = "identity"

    torch = Torch("Identity")  # unnamed, it is no call at all: the input itself
    example = ({}, (2, 3, 3))
    keeps_shape = True


@register
class Dropout(OpModel):
    """Dropout of single elements (training only)."""

    op: Literal["dropout"] = "dropout"
    p: Probability = 0.5

    torch = Torch("Dropout", "F.dropout", positional=1, always=("p",), training=True)
    example = ({"p": 0.25}, (6,))
    keeps_shape = True

    def describe(self) -> str:
        return f"dropout {self.p:g}"


@register
class Dropout2d(OpModel):
    """Dropout of whole channels (training only)."""

    op: Literal["dropout2d"] = "dropout2d"
    p: Probability = 0.5

    torch = Torch("Dropout2d", "F.dropout2d", positional=1, always=("p",), training=True)
    example = ({"p": 0.25}, (2, 3, 3))
    keeps_shape = True

    def infer(self, shape: Shape) -> Shape:
        feature_map(shape, "dropout2d")
        return shape

    def describe(self) -> str:
        return f"dropout2d {self.p:g}"


@register
class Softmax(OpModel):
    """Softmax along one dimension (1: channels or features)."""

    op: Literal["softmax"] = "softmax"
    dim: Annotated[int, Arg(INT)] = 1

    torch = Torch("Softmax", "F.softmax", always=("dim",))
    example = ({"dim": -1}, (7,))
    keeps_shape = True

    def infer(self, shape: Shape) -> Shape:
        rank = len(shape) + 1  # with the batch dimension
        if not -rank <= self.dim < rank:
            raise ShapeError(
                f"softmax dim={self.dim} is out of range for an N x "
                f"{' x '.join(map(str, shape))} tensor",
                hint=f"dim must be between {-rank} and {rank - 1}",
            )
        return shape


@register
class ScaleShift(OpModel):
    """A fixed per-channel affine map ``x * scale[c] + shift[c]`` (input re-normalisation)."""

    op: Literal["scale_shift"] = "scale_shift"
    scale: Annotated[tuple[float, ...], Arg(FLOATS)]
    shift: Annotated[tuple[float, ...], Arg(FLOATS)]

    torch = Torch("ScaleShift", "scale_shift", positional=2, helper=True)
    example = ({"scale": (2.0, 0.5), "shift": (-1.0, 0.25)}, (2, 3, 3))
    keeps_shape = True

    def infer(self, shape: Shape) -> Shape:
        feature_map(shape, "scale_shift")  # its constants broadcast as 1 x C x 1 x 1
        if len(self.scale) != shape[0] or len(self.shift) != shape[0]:
            raise ShapeError(
                f"scale_shift has {len(self.scale)} scales and {len(self.shift)} shifts "
                f"for {shape[0]} channels"
            )
        return shape
