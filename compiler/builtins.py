"""The built-in layers of the language: their names, arguments and defaults.

Argument names are PyTorch's. Each entry lists the arguments in positional
order; ``inferred`` fields are filled from the input shape, never written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from compiler import ir

# Argument kinds, checked by elaboration.
INT, FLOAT, BOOL, PAIR, PADDING, FLOATS = "int", "float", "bool", "pair", "padding", "floats"

REQUIRED = object()
SAME_AS_KERNEL = object()  # pools: stride defaults to the kernel size


@dataclass(frozen=True)
class ArgSpec:
    name: str
    kind: str
    default: Any = REQUIRED


@dataclass(frozen=True)
class Builtin:
    op: type
    args: tuple[ArgSpec, ...] = ()
    inferred: tuple[str, ...] = ()  # fields equal to the input's channel (or feature) count
    produces: str | None = None  # the field that sets the output channel count
    fixed: dict[str, Any] = field(default_factory=dict)
    doc: str = ""


BUILTINS: dict[str, Builtin] = {
    "conv": Builtin(
        ir.Conv,
        (
            ArgSpec("out_channels", INT),
            ArgSpec("kernel_size", PAIR),
            ArgSpec("stride", PAIR, 1),
            ArgSpec("padding", PADDING, 0),
            ArgSpec("dilation", PAIR, 1),
            ArgSpec("groups", INT, 1),
            ArgSpec("bias", BOOL, True),
        ),
        inferred=("in_channels",),
        produces="out_channels",
        doc="2-d convolution; in_channels is inferred",
    ),
    "batchnorm": Builtin(
        ir.BatchNorm,
        (ArgSpec("eps", FLOAT, 1e-5), ArgSpec("momentum", FLOAT, 0.1)),
        inferred=("num_features",),
    ),
    "relu": Builtin(ir.ReLU),
    "maxpool": Builtin(
        ir.MaxPool,
        (
            ArgSpec("kernel_size", PAIR),
            ArgSpec("stride", PAIR, SAME_AS_KERNEL),
            ArgSpec("padding", PAIR, 0),
            ArgSpec("dilation", PAIR, 1),
            ArgSpec("ceil_mode", BOOL, False),
        ),
    ),
    "avgpool": Builtin(
        ir.AvgPool,
        (
            ArgSpec("kernel_size", PAIR),
            ArgSpec("stride", PAIR, SAME_AS_KERNEL),
            ArgSpec("padding", PAIR, 0),
            ArgSpec("ceil_mode", BOOL, False),
            ArgSpec("count_include_pad", BOOL, True),
        ),
    ),
    "adaptive_avgpool": Builtin(ir.AdaptiveAvgPool, (ArgSpec("output_size", PAIR),)),
    "global_avgpool": Builtin(ir.AdaptiveAvgPool, fixed={"output_size": (1, 1)}),
    "lrn": Builtin(
        ir.LRN,
        (
            ArgSpec("size", INT),
            ArgSpec("alpha", FLOAT, 1e-4),
            ArgSpec("beta", FLOAT, 0.75),
            ArgSpec("k", FLOAT, 1.0),
        ),
    ),
    "dropout": Builtin(ir.Dropout, (ArgSpec("p", FLOAT, 0.5),)),
    "dropout2d": Builtin(ir.Dropout2d, (ArgSpec("p", FLOAT, 0.5),)),
    "flatten": Builtin(ir.Flatten),
    "linear": Builtin(
        ir.Linear,
        (ArgSpec("out_features", INT), ArgSpec("bias", BOOL, True)),
        inferred=("in_features",),
        produces="out_features",
    ),
    "softmax": Builtin(ir.Softmax, (ArgSpec("dim", INT, 1),)),
    "scale_shift": Builtin(ir.ScaleShift, (ArgSpec("scale", FLOATS), ArgSpec("shift", FLOATS))),
}

# Weight initialisation schemes usable in ``init`` statements, with their arguments.
INIT_SCHEMES: dict[str, tuple[ArgSpec, ...]] = {
    "kaiming_normal": (
        ArgSpec("mode", "str", "fan_in"),
        ArgSpec("nonlinearity", "str", "leaky_relu"),
    ),
    "kaiming_uniform": (
        ArgSpec("mode", "str", "fan_in"),
        ArgSpec("nonlinearity", "str", "leaky_relu"),
    ),
    "normal": (ArgSpec("mean", FLOAT, 0.0), ArgSpec("std", FLOAT, 1.0)),
    "trunc_normal": (
        ArgSpec("mean", FLOAT, 0.0),
        ArgSpec("std", FLOAT, 1.0),
        ArgSpec("a", FLOAT, -2.0),
        ArgSpec("b", FLOAT, 2.0),
    ),
    "constant": (ArgSpec("val", FLOAT),),
    "xavier_uniform": (ArgSpec("gain", FLOAT, 1.0),),
    "xavier_normal": (ArgSpec("gain", FLOAT, 1.0),),
}
INIT_CHOICES = {
    "mode": ("fan_in", "fan_out"),
    "nonlinearity": ("relu", "leaky_relu", "linear", "tanh", "sigmoid"),
}
INIT_TARGETS = ("conv", "linear", "batchnorm")
