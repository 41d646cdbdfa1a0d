"""netc's front end: the grammar, the AST, imports and the error type."""

from dsl.errors import Span, SpecError
from dsl.loader import load
from dsl.parser import parse

__all__ = ["Span", "SpecError", "load", "parse"]
