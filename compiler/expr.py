"""Expressions in the IR: typed trees, evaluated for shapes and printed for code.

An argument of a layer or block keeps the expression the spec wrote for it
(``ch3x3red``, ``(0.485 - 0.5) / 0.5``), in the scope of the enclosing block
(its parameters and ``in_channels``) or of the network (its parameters).
Backends evaluate an expression (``evaluate``) or print it (``to_python``);
no one parses text. Each kind is a frozen model tagged by ``kind``::

    Const(value=2)                 2
    Ref(name="ch1x1")              ch1x1
    Unary(op="-", operand=...)     -x
    Binary(op="+", left=..., right=...)
    Tuple(items=(...))             (a, b)

An operator is one entry of ``UNARY`` or ``BINARY`` (its Python function and
its precedence); adding one is adding an entry and its literal to the model.

This module imports nothing beyond Pydantic.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Scalar = bool | int | float | str


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class Const(_Frozen):
    """A number, bool or string, as written (or as computed, for a derived size)."""

    kind: Literal["const"] = "const"
    value: Scalar


class Ref(_Frozen):
    """A parameter of the enclosing block or network (or ``in_channels``)."""

    kind: Literal["ref"] = "ref"
    name: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class Unary(_Frozen):
    kind: Literal["unary"] = "unary"
    op: Literal["-"]
    operand: Expr


class Binary(_Frozen):
    kind: Literal["binary"] = "binary"
    op: Literal["+", "-", "*", "/", "//"]
    left: Expr
    right: Expr


class Tuple(_Frozen):
    kind: Literal["tuple"] = "tuple"
    items: tuple[Expr, ...]


Expr = Annotated[Const | Ref | Unary | Binary | Tuple, Field(discriminator="kind")]
EXPR_TYPES = (Const, Ref, Unary, Binary, Tuple)

# operator -> (function, precedence); Python's precedences, higher binds tighter.
UNARY: dict[str, tuple[Callable[[Any], Any], int]] = {"-": (operator.neg, 3)}
BINARY: dict[str, tuple[Callable[[Any, Any], Any], int]] = {
    "+": (operator.add, 1),
    "-": (operator.sub, 1),
    "*": (operator.mul, 2),
    "/": (operator.truediv, 2),
    "//": (operator.floordiv, 2),
}


# -- building -----------------------------------------------------------------------

# Trees built here and in elaboration are made of trees and checked values:
# ``model_construct`` skips validation (which is for trees built by hand or read
# from JSON), so that checking a spec builds no Pydantic validator.


def const(value: Any) -> Const | Tuple:
    """The expression of a plain value (a tuple becomes a ``Tuple`` of constants)."""
    if isinstance(value, tuple):
        return Tuple.model_construct(items=tuple(const(v) for v in value))
    return _const(value)


@functools.lru_cache(maxsize=4096, typed=True)  # typed: 1, 1.0 and True differ
def _const(value: Scalar) -> Const:
    return Const.model_construct(value=value)


@functools.lru_cache(maxsize=4096)
def ref(name: str) -> Ref:
    return Ref.model_construct(name=name)


def total(items: list[Expr]) -> Expr:
    """``a + b + c``, left to right, for integer sizes: a sum added to a sum is
    spliced in (``a + (b + 1)`` is written ``a + b + 1``; exact for integers)."""

    def plus(left: Expr, right: Expr) -> Expr:
        if isinstance(right, Binary) and right.op in ("+", "-"):
            return Binary.model_construct(
                op=right.op, left=plus(left, right.left), right=right.right
            )
        return Binary.model_construct(op="+", left=left, right=right)

    out = items[0]
    for item in items[1:]:
        out = plus(out, item)
    return out


# -- reading --------------------------------------------------------------------------


def names(expr: Expr) -> frozenset[str]:
    """The parameters an expression reads."""
    if isinstance(expr, Ref):
        return frozenset((expr.name,))
    return frozenset().union(*(names(child) for child in _children(expr)))


def is_const(expr: Expr) -> bool:
    return not names(expr)


def _children(expr: Expr) -> tuple[Expr, ...]:
    if isinstance(expr, Unary):
        return (expr.operand,)
    if isinstance(expr, Binary):
        return (expr.left, expr.right)
    if isinstance(expr, Tuple):
        return expr.items
    if isinstance(expr, (Const, Ref)):
        return ()
    raise TypeError(f"not an expression: {expr!r}")


def evaluate(expr: Expr, env: Mapping[str, Any]) -> Any:
    """The value of ``expr`` with parameters bound as in ``env``."""
    if isinstance(expr, Const):
        return expr.value
    if isinstance(expr, Ref):
        return env[expr.name]
    if isinstance(expr, Unary):
        return UNARY[expr.op][0](evaluate(expr.operand, env))
    if isinstance(expr, Binary):
        return BINARY[expr.op][0](evaluate(expr.left, env), evaluate(expr.right, env))
    if isinstance(expr, Tuple):
        return tuple(evaluate(item, env) for item in expr.items)
    raise TypeError(f"not an expression: {expr!r}")


def substitute(expr: Expr, bindings: Mapping[str, Expr]) -> Expr:
    """``expr`` with references replaced (a callee's expression, in the caller's scope)."""
    if isinstance(expr, Ref):
        return bindings.get(expr.name, expr)
    if isinstance(expr, Unary):
        return Unary.model_construct(op=expr.op, operand=substitute(expr.operand, bindings))
    if isinstance(expr, Binary):
        return Binary.model_construct(
            op=expr.op, left=substitute(expr.left, bindings), right=substitute(expr.right, bindings)
        )
    if isinstance(expr, Tuple):
        return Tuple.model_construct(items=tuple(substitute(item, bindings) for item in expr.items))
    return expr


# -- printing -------------------------------------------------------------------------


def literal(value: Any) -> str:
    """Python source for a plain value: ints, floats, bools, strings, tuples."""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (int, float, str)):
        return repr(value)
    if isinstance(value, tuple):
        inner = ", ".join(literal(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    raise TypeError(f"no literal for {value!r}")


def to_python(expr: Expr, name: Callable[[str], str] = str, as_list: bool = False) -> str:
    """Python source for ``expr``, parenthesised only where precedence needs it.

    ``name`` writes a reference (``self.ch1x1`` in ``forward``); ``as_list``
    writes tuples as lists (the arguments of ``torch.split`` and ``torch.tensor``).
    """

    def show(e: Expr, parent: int = 0, right: bool = False) -> str:
        if isinstance(e, Const):
            text = literal(e.value)
            # a negative number binds like a unary minus
            return f"({text})" if text.startswith("-") and parent >= UNARY["-"][1] else text
        if isinstance(e, Ref):
            return name(e.name)
        if isinstance(e, Tuple):
            items = [show(i) for i in e.items]
            if as_list:
                return "[" + ", ".join(items) + "]"
            return f"({items[0]},)" if len(items) == 1 else "(" + ", ".join(items) + ")"
        if isinstance(e, Unary):
            prec = UNARY[e.op][1]
            text = e.op + show(e.operand, prec)
            return f"({text})" if parent > prec else text
        if isinstance(e, Binary):
            prec = BINARY[e.op][1]
            text = f"{show(e.left, prec)} {e.op} {show(e.right, prec, right=True)}"
            return f"({text})" if prec < parent or (right and prec == parent) else text
        raise TypeError(f"not an expression: {e!r}")

    return show(expr)
