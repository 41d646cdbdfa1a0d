"""The built-in layers of the language: their names, arguments and defaults.

Derived from the op registry (``compiler.ops``): one built-in per op a spec
may write, plus the aliases (``global_avgpool``). Argument names are
PyTorch's. Each entry lists the arguments in positional order; ``inferred``
fields are filled from the input shape, never written. The language
reference's tables are rendered from these entries by ``compiler.reference``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from compiler import ops

# Argument kinds, checked by elaboration.
INT, FLOAT, BOOL, PAIR, PADDING, FLOATS = (
    ops.INT,
    ops.FLOAT,
    ops.BOOL,
    ops.PAIR,
    ops.PADDING,
    ops.FLOATS,
)

REQUIRED = ops.REQUIRED
SAME_AS_KERNEL = ops.SAME_AS_KERNEL  # pools: stride defaults to the kernel size


@dataclass(frozen=True)
class ArgSpec:
    name: str
    kind: str
    default: Any = REQUIRED
    range: ops.Arg | None = None  # the op argument's range and doc (None: unchecked)
    doc: str = ""


@dataclass(frozen=True)
class Builtin:
    op: type[ops.OpModel]
    args: tuple[ArgSpec, ...] = ()
    inferred: tuple[str, ...] = ()  # fields equal to the input's channel (or feature) count
    produces: str | None = None  # the field that sets the output channel count
    fixed: dict[str, Any] = field(default_factory=dict)
    doc: str = ""


def _compact(kind: str, value: Any) -> Any:
    """A pair default as the spec writes it: ``(1, 1)`` is ``1``."""
    if kind in (PAIR, PADDING) and isinstance(value, tuple) and len(set(value)) == 1:
        return value[0]
    return value


def _builtin(op: type[ops.OpModel], fixed: dict[str, Any], doc: str) -> Builtin:
    args, inferred, produces = [], [], None
    for name, arg in op.args().items():
        if name in fixed:
            continue
        if arg.inferred:
            inferred.append(name)
            continue
        if arg.produces:
            produces = name
        default = _compact(arg.kind, op.spec_default(name))
        args.append(ArgSpec(name, arg.kind, default, arg, arg.doc))
    return Builtin(op, tuple(args), tuple(inferred), produces, dict(fixed), doc)


def _doc(op: type[ops.OpModel]) -> str:
    return (op.__doc__ or "").strip().split("\n")[0]


BUILTINS: dict[str, Builtin] = {}
for _tag, _op in ops.OPS.items():
    if _op.written:
        BUILTINS[_tag] = _builtin(_op, {}, _doc(_op))
    for _name, _alias in ops.ALIASES.items():
        if _alias.op is _op:
            BUILTINS[_name] = _builtin(_op, _alias.fixed, _alias.doc)


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
