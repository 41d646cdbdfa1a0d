"""Convolutions: ``conv``, and ``fused_conv``, which deploy passes make of it."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict

from compiler.ops.base import (
    BOOL,
    INT,
    PADDING,
    PAIR,
    Arg,
    OpModel,
    Pair,
    Shape,
    ShapeError,
    Torch,
    check_positive,
    conv_out,
    feature_map,
    pair_text,
    register,
)

Channels = Annotated[int, Arg(INT, min=1, inferred=True, doc="the input's channels")]
Padding = Annotated[
    Pair | Literal["same"], Arg(PADDING, min=0, doc='an int, a pair, "same" or "valid"')
]
Positive = Annotated[Pair, Arg(PAIR, min=1)]


class _Convolution(OpModel):
    """What a plain and a fused convolution share: the fields, the rule, the counts,
    the description."""

    in_channels: Channels
    out_channels: Annotated[int, Arg(INT, min=1, produces=True)]
    kernel_size: Positive
    stride: Positive = (1, 1)
    padding: Padding = (0, 0)
    dilation: Positive = (1, 1)
    groups: Annotated[int, Arg(INT, min=1)] = 1
    bias: Annotated[bool, Arg(BOOL)] = True

    def infer(self, shape: Shape) -> Shape:
        _, h, w = feature_map(shape, "conv")
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ShapeError(
                f"groups={self.groups} must divide both in_channels={self.in_channels} "
                f"and out_channels={self.out_channels}"
            )
        if self.padding == "same":
            if self.stride != (1, 1):
                raise ShapeError("padding=same needs stride=1", hint="use an explicit padding")
            return (self.out_channels, h, w)
        dims = [
            conv_out(size, k, s, p, d)
            for size, k, s, p, d in zip(
                (h, w), self.kernel_size, self.stride, self.padding, self.dilation
            )
        ]
        check_positive("conv", dims[0], dims[1], h, w)
        return (self.out_channels, *dims)

    def _weights(self) -> int:
        return self.out_channels * (self.in_channels // self.groups) * math.prod(self.kernel_size)

    def params(self) -> int:
        return self._weights() + (self.out_channels if self.bias else 0)

    def macs(self, out: Shape) -> int:
        return self._weights() * out[1] * out[2]

    def describe(self) -> str:
        k = self.kernel_size
        text = f"conv {k[0]}x{k[1]}"
        if self.stride != (1, 1):
            text += f"/{pair_text(self.stride)}"
        if self.groups != 1:
            text += f" g{self.groups}"
        return text


@register
class Conv(_Convolution):
    """2-d convolution; in_channels is inferred."""

    op: Literal["conv"] = "conv"

    torch = Torch("Conv2d", positional=3)
    example = ({"in_channels": 4, "out_channels": 6, "kernel_size": (3, 2), "stride": (2, 1),
                "padding": (1, 0), "groups": 2, "bias": False}, (4, 9, 8))  # fmt: skip
    stateful = True


class ConvSource(BaseModel):
    """Where one slice of a deploy convolution's weights comes from in a training
    checkpoint (the ``state_dict`` of the unoptimised model).

    ``conv`` is the training convolution's module path: ``{conv}.weight`` (and
    ``{conv}.bias`` where ``bias``) give ``out_channels`` consecutive output
    channels of the deploy weight. ``bn``, when set, is the module path of the
    batch norm folded into it (``{bn}.weight``, ``.bias``, ``.running_mean``,
    ``.running_var``; ``.num_batches_tracked`` is not used), with its ``eps``::

        scale = bn.weight / sqrt(bn.running_var + eps)
        weight = conv.weight * scale[:, None, None, None]
        bias = (conv.bias - bn.running_mean) * scale + bn.bias   # conv.bias: 0 if none
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    conv: str
    out_channels: int
    bias: bool = True
    bn: str | None = None
    eps: float = 1e-5


_CONV_FIELDS = tuple(name for name in Conv.model_fields if name != "op")


@register
class FusedConv(_Convolution):
    """A deploy convolution made of training-time ones, its ReLU in the call.

    Its weight (bias) is its ``sources``' weights (biases), each transformed as
    ``ConvSource`` says, concatenated along output channels in order: one source
    for a folded batch norm or a fused ReLU, several for sibling 1x1
    convolutions fused horizontally (``Fork``). ``bias`` is false only when no
    source has a bias or a batch norm. ``relu``: ReLU is applied to the output.
    """

    op: Literal["fused_conv"] = "fused_conv"
    relu: Annotated[bool, Arg(BOOL)] = False
    sources: Annotated[tuple[ConvSource, ...], Arg("sources")]

    torch = Torch("Conv2d", positional=3, fields=_CONV_FIELDS)
    example = ({"in_channels": 4, "out_channels": 6, "kernel_size": (1, 1), "relu": True,
                "sources": ({"conv": "a", "out_channels": 2, "bias": False, "bn": "bn"},
                            {"conv": "b", "out_channels": 4})}, (4, 5, 5))  # fmt: skip
    stateful = True
    written = False

    @property
    def split(self) -> tuple[int, ...]:
        """The output channels of each source, in order (``torch.split`` sizes)."""
        return tuple(s.out_channels for s in self.sources)

    def describe(self) -> str:
        """``conv 1x1 +bn +relu (3 fused)``."""
        text = super().describe()
        text += " +bn" * any(s.bn for s in self.sources) + " +relu" * self.relu
        return text + (f" ({len(self.sources)} fused)" if len(self.sources) > 1 else "")
