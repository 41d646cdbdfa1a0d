"""Values that remember how they were written.

Elaboration evaluates every argument, but the IR keeps the expression behind
a value (``ch3x3red``, not ``96``) so that one generated class serves every
instance of a block. A ``Sym`` is a value with its ``compiler.expr`` tree in
the scope of the block being elaborated.

Written expressions stay as written (``(0.485 - 0.5) / 0.5``). Sizes netc
derives (a concat's channels, a block's output channels in the caller's
scope) are folded to a constant when they read no parameter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from compiler import expr as ex


@dataclass(frozen=True, slots=True)
class Sym:
    value: Any
    tree: ex.Expr

    @staticmethod
    def const(value: Any) -> Sym:
        return Sym(value, ex.const(value))

    @staticmethod
    def ref(name: str, value: Any) -> Sym:
        return Sym(value, ex.ref(name))


def binop(op: str, left: Sym, right: Sym) -> Sym:
    """``left op right`` as written."""
    value = ex.BINARY[op][0](left.value, right.value)
    tree = ex.Binary.model_construct(op=op, left=left.tree, right=right.tree)  # type: ignore[arg-type]  # an operator of ex.BINARY
    return Sym(value, tree)


def neg(operand: Sym) -> Sym:
    return Sym(-operand.value, ex.Unary.model_construct(op="-", operand=operand.tree))


def folded(sym: Sym) -> Sym:
    """A derived size: a constant when it reads no parameter."""
    return Sym.const(sym.value) if ex.is_const(sym.tree) else sym


def total(syms: list[Sym]) -> Sym:
    """The sum of derived sizes (a concat's channels), folded."""
    if all(ex.is_const(s.tree) for s in syms):
        return Sym.const(sum(s.value for s in syms))
    return Sym(sum(s.value for s in syms), ex.total([s.tree for s in syms]))


def times(sym: Sym, factor: int) -> Sym:
    """A derived size times a constant (flatten's features), folded."""
    if factor == 1:
        return sym
    return folded(
        Sym(
            sym.value * factor,
            ex.Binary.model_construct(op="*", left=sym.tree, right=ex.const(factor)),
        )
    )


def substitute(sym: Sym, bindings: dict[str, ex.Expr]) -> Sym:
    """A callee's derived size in the caller's scope."""
    return folded(Sym(sym.value, ex.substitute(sym.tree, bindings)))
