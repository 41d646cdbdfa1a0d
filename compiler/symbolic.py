"""Values that remember how they were written.

Elaboration evaluates every argument, but the source backend wants the
expression behind a value (``ch3x3red``, not ``96``) so that one generated
class serves every instance of a block. A ``Sym`` is a value with an
expression tree in the scope of the block being elaborated; constants fold.

Trees are tuples: ``("const", v)``, ``("ref", name)``, ``("bin", op, a, b)``,
``("neg", a)``, ``("tuple", items)``.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

Tree = tuple

_APPLY = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "//": operator.floordiv,
}
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2, "//": 2}


@dataclass(frozen=True, slots=True)
class Sym:
    value: Any
    tree: Tree

    @staticmethod
    def const(value: Any) -> Sym:
        return Sym(value, ("const", value))

    @staticmethod
    def ref(name: str, value: Any) -> Sym:
        return Sym(value, ("ref", name))

    @property
    def expr(self) -> str:
        return render(self.tree)


def binop(op: str, left: Sym, right: Sym) -> Sym:
    value = _APPLY[op](left.value, right.value)
    return Sym(value, fold(("bin", op, left.tree, right.tree), value))


def neg(operand: Sym) -> Sym:
    value = -operand.value
    return Sym(value, fold(("neg", operand.tree), value))


def fold(tree: Tree, value: Any) -> Tree:
    """Constant-fold a freshly built node; drop ``x * 1`` and ``x + 0``."""
    kind = tree[0]
    if kind == "neg":
        return ("const", value) if tree[1][0] == "const" else tree
    if kind == "bin":
        _, op, a, b = tree
        if a[0] == "const" and b[0] == "const":
            return ("const", value)
        if op == "*" and b == ("const", 1) or op in "+-" and b == ("const", 0):
            return a
        if op == "*" and a == ("const", 1) or op == "+" and a == ("const", 0):
            return b
    return tree


def substitute(tree: Tree, bindings: dict[str, Tree], value: Any) -> Tree:
    """Replace references by trees (a callee's expression, in the caller's scope)."""

    def sub(t: Tree) -> Tree:
        kind = t[0]
        if kind == "ref":
            return bindings.get(t[1], t)
        if kind == "bin":
            return ("bin", t[1], sub(t[2]), sub(t[3]))
        if kind == "neg":
            return ("neg", sub(t[1]))
        if kind == "tuple":
            return ("tuple", tuple(sub(i) for i in t[1]))
        return t

    result = sub(tree)
    return ("const", value) if not _has_ref(result) else result


def _has_ref(tree: Tree) -> bool:
    kind = tree[0]
    if kind == "ref":
        return True
    if kind == "bin":
        return _has_ref(tree[2]) or _has_ref(tree[3])
    if kind == "neg":
        return _has_ref(tree[1])
    if kind == "tuple":
        return any(_has_ref(i) for i in tree[1])
    return False


def is_const(tree: Tree) -> bool:
    return not _has_ref(tree)


def literal(value: Any) -> str:
    """Python source for a plain value: ints, floats, bools, strings, tuples."""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, tuple):
        inner = ", ".join(literal(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    raise TypeError(f"no literal for {value!r}")


def render(tree: Tree, parent: int = 0, right: bool = False) -> str:
    kind = tree[0]
    if kind == "const":
        return literal(tree[1])
    if kind == "ref":
        return tree[1]
    if kind == "tuple":
        items = [render(i) for i in tree[1]]
        return f"({items[0]},)" if len(items) == 1 else "(" + ", ".join(items) + ")"
    if kind == "neg":
        text = "-" + render(tree[1], 3)
        return f"({text})" if parent > 3 else text
    _, op, a, b = tree
    prec = _PRECEDENCE[op]
    text = f"{render(a, prec)} {op} {render(b, prec, right=True)}"
    return f"({text})" if prec < parent or (right and prec == parent) else text
