"""What every op definition is made of.

An op is one frozen Pydantic model, a subclass of ``OpModel``, registered with
``@register``. Its fields are its IR fields, in the spec's positional order;
each carries an ``Arg`` in its ``Annotated`` metadata, which says the
argument's kind in the language (``int``, ``pair`` ...), its range, its doc,
and whether it is inferred from the input (``in_channels``) or sets the output
channels (``out_channels``). The same ``Arg`` validates the IR field, so
``Conv(stride=(0, 0))`` is refused. A field's default is PyTorch's default,
which is also the spec's (unless the ``Arg`` says otherwise, as a pool's
stride does).

The model's methods are its shape rule (``infer``), parameter and MAC counts
and short description; its ``torch`` descriptor says which PyTorch module and
function the backends build and write, and its ``example`` is an instance the
tests build in every backend.

This module imports nothing beyond Pydantic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict
from pydantic_core import PydanticCustomError, core_schema

Pair = tuple[int, int]
Shape = tuple[int, ...]  # (C, H, W) for feature maps, (F,) after flatten

# Argument kinds in the language, checked by elaboration.
INT, FLOAT, BOOL, PAIR, PADDING, FLOATS = "int", "float", "bool", "pair", "padding", "floats"
KINDS = (INT, FLOAT, BOOL, PAIR, PADDING, FLOATS)


class _Marker:
    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


REQUIRED = _Marker("REQUIRED")  # the spec must give the argument
SAME_AS_KERNEL = _Marker("SAME_AS_KERNEL")  # pools: stride defaults to the kernel size
_FIELD_DEFAULT = _Marker("FIELD_DEFAULT")


@dataclass(frozen=True)
class Arg:
    """One argument of an op: how the spec writes it and what values it takes.

    ``min``/``max`` bound every number of the value (both sides of a pair);
    ``error`` replaces the range message's start (``dropout probability``).
    ``default`` is the spec's default where it is not the field's.
    """

    kind: str
    min: float | None = None
    max: float | None = None
    doc: str = ""
    default: Any = _FIELD_DEFAULT
    inferred: bool = False  # filled from the input's channel (or feature) count, never written
    produces: bool = False  # the output channel count
    error: str = ""

    def range_error(self, what: str, value: Any, shown: Any = None) -> str | None:
        """The message when ``value`` is out of range, else None; ``shown``: the
        value as written, where that differs (``0`` for the pair ``(0, 0)``)."""
        items = value if isinstance(value, tuple) else (value,)
        numbers = [n for n in items if isinstance(n, (int, float)) and not isinstance(n, bool)]
        low = self.min is not None and any(n < self.min for n in numbers)
        high = self.max is not None and any(n > self.max for n in numbers)
        if not (low or high):
            return None
        if self.error:
            return f"{self.error}, got {value}"
        shown = str(value if shown is None else shown).replace(" ", "")
        if self.max is not None:
            return f"{what} must be between {self.min:g} and {self.max:g}, got {shown}"
        if self.min == 0:
            return f"{what} must not be negative, got {shown}"
        return f"{what} must be at least {self.min:g}, got {shown}"

    # -- as Pydantic metadata: the IR field validates the same range

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> core_schema.CoreSchema:
        schema = handler(source)
        if self.min is None and self.max is None:
            return schema

        def check(value: Any, info: core_schema.ValidationInfo) -> Any:
            message = self.range_error(info.field_name or "value", value)
            if message is not None:
                raise PydanticCustomError("netc_range", message)
            return value

        return core_schema.with_info_after_validator_function(check, schema)


@dataclass(frozen=True)
class Torch:
    """What the backends build for an op, and how they write it.

    ``module``: the ``torch.nn`` class of a named layer (a netc helper class
    when ``helper``); ``function``: the call an unnamed layer makes, ``F.`` for
    ``torch.nn.functional`` (None: only as a module), with ``extra`` constant
    arguments after the input. The arguments are ``fields`` (default: every
    field but those the spec never writes), the first ``positional`` of them
    by position; a field equal to its default (PyTorch's, the field's) is left
    out, except those in ``always``; ``kernel_default``: fields whose PyTorch
    default is the kernel size. ``training``: the function takes the module's
    training flag last.
    """

    module: str
    function: str | None = None
    positional: int = 0
    always: tuple[str, ...] = ()
    kernel_default: tuple[str, ...] = ()
    training: bool = False
    extra: tuple[Any, ...] = ()
    helper: bool = False
    fields: tuple[str, ...] | None = None


class ShapeError(ValueError):
    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


class OpModel(BaseModel):
    """The base of every op: frozen, no unknown fields, tagged by ``op``."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    op: str  # each op narrows it to its tag, ``Literal["conv"] = "conv"``

    torch: ClassVar[Torch]
    example: ClassVar[tuple[dict[str, Any], Shape]]  # fields (but op) and an input shape
    stateful: ClassVar[bool] = False  # has weights: must be named
    keeps_shape: ClassVar[bool] = False  # the output has the input's shape, whatever the fields
    written: ClassVar[bool] = True  # a built-in of the language (False: made by passes)

    @classmethod
    def tag(cls) -> str:
        return cls.model_fields["op"].default

    @classmethod
    def args(cls) -> dict[str, Arg]:
        """Every field but ``op`` with its ``Arg``, in order."""
        out = {}
        for name, info in cls.model_fields.items():
            if name == "op":
                continue
            found = [m for m in info.metadata if isinstance(m, Arg)]
            if len(found) != 1:
                raise TypeError(f"{cls.__name__}.{name} needs one Arg in its metadata")
            out[name] = found[0]
        return out

    @classmethod
    def spec_default(cls, name: str) -> Any:
        """The spec's default of an argument: ``REQUIRED``, ``SAME_AS_KERNEL`` or a value."""
        arg = cls.args()[name]
        if arg.default is not _FIELD_DEFAULT:
            return arg.default
        info = cls.model_fields[name]
        return REQUIRED if info.is_required() else info.default

    def torch_args(self) -> list[tuple[str, Any, bool, bool]]:
        """The arguments of the op's PyTorch module or function, in order, as
        ``(field, value, positional, default)``; ``default``: the value is
        PyTorch's default, so a call may leave it out (``Torch``)."""
        spec = self.torch
        names = spec.fields if spec.fields is not None else tuple(self.args())
        out = []
        for index, name in enumerate(names):
            value = getattr(self, name)
            if name in spec.always:
                default = False
            elif name in spec.kernel_default:
                default = value == self.kernel_size  # type: ignore[attr-defined]
            else:
                info = type(self).model_fields[name]
                default = not info.is_required() and value == info.default
            out.append((name, value, index < spec.positional, default))
        return out

    # -- the rules: override in each op

    def infer(self, shape: Shape) -> Shape:
        """The output shape for an input of ``shape`` (no batch dimension), or ShapeError;
        an op that ``keeps_shape`` needs no rule of its own."""
        if self.keeps_shape:
            return shape
        raise NotImplementedError(type(self).__name__)

    def params(self) -> int:
        return 0

    def macs(self, out: Shape) -> int:
        return 0

    def describe(self) -> str:
        """A short, readable description: ``conv 7x7/2``, ``maxpool 3x3/2 ceil``."""
        return self.tag()


@dataclass(frozen=True)
class Alias:
    """A built-in name for an op with some fields fixed (``global_avgpool``)."""

    op: type[OpModel]
    fixed: dict[str, Any]
    doc: str


_REGISTRY: dict[str, type[OpModel]] = {}
_ALIASES: dict[str, Alias] = {}


def register(cls: type[OpModel]) -> type[OpModel]:
    """Add an op to the registry (``compiler.ops.OPS``), in definition order."""
    tag = cls.tag()
    if tag in _REGISTRY:
        raise ValueError(f"op {tag!r} is defined twice")
    _REGISTRY[tag] = cls
    return cls


def alias(name: str, op: type[OpModel], doc: str, **fixed: Any) -> None:
    """Register ``name`` as a built-in that makes ``op`` with ``fixed`` fields."""
    if name in _REGISTRY or name in _ALIASES:
        raise ValueError(f"built-in {name!r} is defined twice")
    _ALIASES[name] = Alias(op, fixed, doc)


# -- shape arithmetic shared by the rules ------------------------------------------------


def show(shape: Shape) -> str:
    return "x".join(str(d) for d in shape)


def feature_map(shape: Shape, what: str) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ShapeError(
            f"{what} needs a C x H x W feature map, got a flat vector of {shape[0]} features"
        )
    return shape


def check_positive(what: str, out_h: int, out_w: int, in_h: int, in_w: int) -> None:
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
    out = (-(-span // stride) if ceil_mode else span // stride) + 1  # exact for any size
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def pair_text(p: Pair) -> str:
    return str(p[0]) if p[0] == p[1] else f"{p[0]}x{p[1]}"
