"""Expressions and call arguments, written for one class's ``__init__`` or ``forward``."""

from __future__ import annotations

from compiler import expr as ex
from compiler import ir
from compiler.expr import literal
from compiler.names import Namespace
from dsl.errors import Span, SpecError


def span_of(span: ir.SourceSpan) -> Span:
    return Span(span.file, span.line, span.column, span.end_line, span.end_column)


def _unsupported(what: str, span: ir.SourceSpan) -> SpecError:
    return SpecError(f"the source backend cannot emit {what}", span_of(span))


class Scope:
    """The names an expression may use inside one class: its constructor's parameters.

    ``init`` writes an expression for ``__init__``, where they are locals;
    ``forward`` for ``forward``, where each becomes an attribute that
    ``__init__`` sets (``self.p = p``). Either refuses a reference out of scope
    and anything that is not a ``compiler.expr`` tree (an IR built by hand).
    """

    def __init__(self, params: list[str], attrs: Namespace, span: ir.SourceSpan):
        self.params = params
        self.attrs = attrs
        self.span = span
        self.used: set[str] = set()  # parameters __init__ reads
        self.hyper: dict[str, str] = {}  # parameter -> attribute, for forward

    def _check(self, expr: ex.Expr) -> frozenset[str]:
        try:
            names = ex.names(expr)
        except TypeError as err:
            raise SpecError(
                f"the source backend refuses an expression: {err}", span_of(self.span)
            ) from None
        unknown = names - set(self.params)
        if unknown:
            raise SpecError(
                f"the source backend found names out of scope in {ex.to_python(expr)}: "
                f"{', '.join(sorted(unknown))}",
                span_of(self.span),
            )
        return names

    def init(self, expr: ex.Expr, as_list: bool = False) -> str:
        self.used |= self._check(expr)
        return ex.to_python(expr, as_list=as_list)

    def forward(self, expr: ex.Expr, as_list: bool = False) -> str:
        for name in sorted(self._check(expr)):
            if name not in self.hyper:
                self.hyper[name] = self.attrs.create(name)
                self.used.add(name)
        return ex.to_python(expr, lambda name: f"self.{self.hyper[name]}", as_list)


def _compact(value: object) -> object:
    """``(3, 3)`` -> ``3``: PyTorch reads one number as both sides."""
    if isinstance(value, tuple) and len(value) == 2 and value[0] == value[1]:
        return value[0]
    return value


def _args(layer: ir.Layer, render) -> list[str]:
    """The call's arguments: what the spec wrote, else the value where it is not PyTorch's default."""
    out = []
    for name, value, positional, default in layer.op.torch_args():
        if name in layer.exprs:
            text = render(layer.exprs[name])
        elif default:
            continue
        else:
            text = literal(_compact(value))
        out.append(text if positional else f"{name}={text}")
    return out


def code(expr: ex.Expr) -> str:
    """A size in a shape comment: its expression where it reads a parameter, else ""."""
    return "" if ex.is_const(expr) else ex.to_python(expr)
