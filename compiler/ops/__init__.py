"""The registry of ops: one definition per op, from which everything else derives.

Each op is one model in one small module here (``conv.py``, ``pool.py`` ...),
registered with ``@register``: its fields with their ``Arg`` (kind, range,
doc; PyTorch's default), its shape rule, parameter and MAC counts, its
description, and its ``Torch`` descriptor. The language's built-ins
(``compiler.builtins``), the IR's op union (``compiler.ir.Op``), the shape
rules (``compiler.shapes``), the descriptions (``compiler.display``) and the
modules and calls of the runtime and source backends all read it.

Adding an op: a model in the module of its family (or a new module imported
below), with an ``example``; ``tests/test_ops.py`` then checks it in every
stage.
"""

from __future__ import annotations

# Import order is registration order: the order of the language reference.
# isort: off
from compiler.ops import conv, norm, pool, elementwise, linear  # noqa: F401

# isort: on
from compiler.ops.base import (
    _ALIASES,
    _REGISTRY,
    BOOL,
    FLOAT,
    FLOATS,
    INT,
    KINDS,
    PADDING,
    PAIR,
    REQUIRED,
    SAME_AS_KERNEL,
    Alias,
    Arg,
    OpModel,
    ShapeError,
    Torch,
)
from compiler.ops.conv import Conv, ConvSource, FusedConv
from compiler.ops.elementwise import (
    GELU,
    Dropout,
    Dropout2d,
    Hardswish,
    Identity,
    LeakyReLU,
    ReLU,
    ReLU6,
    ScaleShift,
    Sigmoid,
    SiLU,
    Softmax,
    Tanh,
)
from compiler.ops.linear import Flatten, Linear
from compiler.ops.norm import LRN, BatchNorm
from compiler.ops.pool import AdaptiveAvgPool, AvgPool, MaxPool

OPS: dict[str, type[OpModel]] = dict(_REGISTRY)  # tag -> model, in definition order
ALIASES: dict[str, Alias] = dict(_ALIASES)

__all__ = [
    "ALIASES",
    "BOOL",
    "FLOAT",
    "FLOATS",
    "GELU",
    "INT",
    "KINDS",
    "LRN",
    "OPS",
    "PADDING",
    "PAIR",
    "REQUIRED",
    "SAME_AS_KERNEL",
    "AdaptiveAvgPool",
    "Alias",
    "Arg",
    "AvgPool",
    "BatchNorm",
    "Conv",
    "ConvSource",
    "Dropout",
    "Dropout2d",
    "Flatten",
    "FusedConv",
    "Hardswish",
    "Identity",
    "LeakyReLU",
    "Linear",
    "MaxPool",
    "OpModel",
    "ReLU",
    "ReLU6",
    "ScaleShift",
    "ShapeError",
    "SiLU",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "Torch",
]
