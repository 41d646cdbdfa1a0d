"""The spec's syntax tree: plain frozen dataclasses, a source span on every node.

The AST says what was written, nothing more: names are unresolved, numbers
unevaluated. ``compiler.elaborate`` gives it meaning.
"""

from __future__ import annotations

from dataclasses import dataclass

from dsl.errors import Span

# -- expressions --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Literal:
    value: int | float | bool | str
    span: Span


@dataclass(frozen=True, slots=True)
class Ref:
    name: str
    span: Span


@dataclass(frozen=True, slots=True)
class BinOp:
    op: str  # one of + - * / //
    left: Expr
    right: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Neg:
    operand: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class TupleExpr:
    items: tuple[Expr, ...]
    span: Span


Expr = Literal | Ref | BinOp | Neg | TupleExpr


# -- statements ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Arg:
    name: str | None  # None for a positional argument
    value: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Call:
    """``name(args)``: a built-in layer or a user-defined block."""

    name: str
    args: tuple[Arg, ...]
    span: Span
    name_span: Span


@dataclass(frozen=True, slots=True)
class Repeat:
    """``[a -> b] * count`` in a chain: its items ``count`` times over."""

    chain: tuple[Link, ...]
    count: Expr
    span: Span


Link = Call | Repeat  # one item of a chain


@dataclass(frozen=True, slots=True)
class LayerStmt:
    """``[name =] call -> call -> ... [if guard]``."""

    name: str | None
    chain: tuple[Link, ...]
    guard: Expr | None
    span: Span
    name_span: Span | None


@dataclass(frozen=True, slots=True)
class GroupStmt:
    """``{ statements }`` as a join's branch: a sequence whose named layers are
    attributes of the enclosing block (no module of its own)."""

    body: tuple[Stmt, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class ConcatStmt:
    """Parallel branches on the same input, joined: ``kind`` is ``concat`` (along
    channels), ``add`` or ``mul`` (element-wise). ``scales`` holds, per branch, the
    factor written before it in an ``add`` (``0.17 * {...}``), or None; () when none is."""

    branches: tuple[LayerStmt | GroupStmt, ...]
    span: Span
    kind: str = "concat"
    scales: tuple[Expr | None, ...] = ()


@dataclass(frozen=True, slots=True)
class InputStmt:
    shape: tuple[int, int, int]
    span: Span


@dataclass(frozen=True, slots=True)
class AuxStmt:
    """An auxiliary head: ``aux name = chain at tap [weight w] [if guard]``."""

    name: str
    chain: tuple[Call, ...]
    tap: str
    weight: Expr | None
    guard: Expr | None
    span: Span
    name_span: Span
    tap_span: Span


@dataclass(frozen=True, slots=True)
class InitStmt:
    """``init conv = kaiming_normal(...)``: weight initialisation for one layer kind."""

    target: str
    call: Call
    span: Span
    target_span: Span


Stmt = LayerStmt | ConcatStmt | GroupStmt | InputStmt | AuxStmt | InitStmt


# -- definitions --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    type: str
    default: Expr | None
    span: Span
    type_span: Span


@dataclass(frozen=True, slots=True)
class BlockDef:
    """A ``block`` or the ``network``: parameters and a body of statements."""

    name: str
    params: tuple[Param, ...]
    body: tuple[Stmt, ...]
    is_network: bool
    doc: str
    span: Span
    name_span: Span


@dataclass(frozen=True, slots=True)
class Import:
    path: str
    span: Span


@dataclass(frozen=True, slots=True)
class SpecFile:
    path: str
    imports: tuple[Import, ...]
    definitions: tuple[BlockDef, ...]
    doc: str = ""  # the comment that opens the file, when it is not a block's doc comment
    # Just past the last thing written (1:1 in a file with nothing in it): where an
    # error about the whole file, such as "no network", points.
    end_span: Span | None = None
