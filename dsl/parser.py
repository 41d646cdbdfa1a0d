"""Spec text to AST: the Lark LALR parser and the transformer that builds ``dsl.ast``.

Syntax errors become ``SpecError`` with the position, the source line and what
was expected, in words rather than terminal names.
"""

from __future__ import annotations

import re
from dataclasses import replace
from functools import lru_cache

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
    VisitError,
)

from dsl import ast
from dsl.errors import Span, SpecError, register_source

# How each terminal reads in "expected ..." messages.
_TERMINAL_WORDS = {
    "NAME": "a name",
    "INT": "an integer",
    "FLOAT": "a number",
    "STRING": "a string",
    "SHAPE": "a shape like 3x224x224",
    "LPAR": "'('",
    "RPAR": "')'",
    "LBRACE": "'{'",
    "LSQB": "'['",
    "RSQB": "']'",
    "RBRACE": "'}'",
    "COMMA": "','",
    "EQUAL": "'='",
    "COLON": "':'",
    "__ANON_0": "'->'",
    "__ANON_1": "'//'",
    "MINUS": "'-'",
    "PLUS": "'+'",
    "STAR": "'*'",
    "SLASH": "'/'",
    "$END": "end of file",
}
_OPERATORS = {"PLUS", "MINUS", "STAR", "SLASH", "__ANON_1"}


# Integers have at most this many digits (a 64-bit integer has 19): longer ones are
# refused at the literal, before Python converts them (it refuses past 4,300).
MAX_DIGITS = 19
# The syntax tree nests at most this deep (an expression like 1+1+...+1 nests one
# level per term): deeper is refused with a position, not with a RecursionError.
MAX_DEPTH = 120

# Comments are ignored by the grammar but collected here, for doc strings.
_comments: list[Token] = []


@lru_cache(maxsize=2)
def _parser(strict: bool = False) -> Lark:
    """The LALR parser. Building it is cached on disk by Lark; ``strict=True``
    (used by the tests) also proves the grammar free of conflicts and of
    colliding terminals, which takes a quarter of a second."""
    return Lark.open(
        "grammar.lark",
        rel_to=__file__,
        parser="lalr",
        strict=strict,
        cache=not strict,
        propagate_positions=True,
        maybe_placeholders=True,
        lexer_callbacks={"COMMENT": _comments.append},
    )


def _words(terminal: str) -> str:
    if terminal in _TERMINAL_WORDS:
        return _TERMINAL_WORDS[terminal]
    if terminal.isupper():
        keyword = _parser().get_terminal(terminal).pattern.value
        return f"'{keyword}'"
    return terminal


_VALUE_START = {"INT", "FLOAT", "STRING", "NAME", "LPAR", "MINUS", "TRUE", "FALSE"}


def _expected(expected: set[str]) -> str:
    collapsed: set[str] = set()
    if {"INT", "FLOAT", "STRING"} <= expected:  # one entry for anything that starts a value
        expected = expected - _VALUE_START
        collapsed.add("a value")
    if expected & _OPERATORS:  # and one for the arithmetic operators
        expected = expected - _OPERATORS
        collapsed.add("an operator")
    words = sorted({_words(t) for t in expected} | collapsed)
    if len(words) == 1:
        return f"expected {words[0]}"
    return "expected one of " + ", ".join(words)


def parse(text: str, path: str) -> ast.SpecFile:
    """Parse one spec file's text; raise ``SpecError`` on any syntax error."""
    tree, comments = parse_tree(text, path)
    try:
        spec = _ToAst(path, _doc_comments(comments, text)).transform(tree)
    except VisitError as err:  # a SpecError raised by a rule (an integer too large)
        if isinstance(err.orig_exc, SpecError):
            raise err.orig_exc from None
        raise
    return replace(spec, doc=_file_doc(comments, text, spec), end_span=end_of_text(text, path))


def end_of_text(text: str, path: str) -> Span:
    """Just past the last thing written in ``text`` (comments count; trailing blank
    lines do not): 1:1 when there is nothing. Lines as the parser counts them."""
    lines = text.rstrip().split("\n")
    line, column = len(lines), len(lines[-1]) + 1
    return Span(path, line, column, line, column + 1)


def parse_tree(text: str, path: str) -> tuple[Tree, list[Token]]:
    """The Lark parse tree and the comment tokens, in order (``dsl.fmt`` lays both out);
    ``SpecError`` on any syntax error."""
    register_source(path, text)
    _comments.clear()
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as err:
        raise _syntax_error(err, text, path) from None
    _check_depth(tree, path)
    return tree, list(_comments)


def _check_depth(tree: Tree, path: str) -> None:
    """Refuse a tree nested deeper than ``MAX_DEPTH`` (walked without recursion)."""
    todo = [(tree, 1)]
    while todo:
        node, depth = todo.pop()
        if depth > MAX_DEPTH:
            line, column = getattr(node.meta, "line", 1), getattr(node.meta, "column", 1)
            raise SpecError(
                f"nested too deeply: more than {MAX_DEPTH} levels of expressions",
                Span(path, line, column, line, column + 1),
                hint="split the expression, or give a parameter the value",
            )
        todo.extend((child, depth + 1) for child in node.children if isinstance(child, Tree))


def _integer(token: Token, path: str) -> int:
    digits = str(token)
    if len(digits.lstrip("0")) > MAX_DIGITS:
        raise SpecError(
            f"integer too large: {len(digits):,} digits (at most {MAX_DIGITS})",
            _tspan(path, token),
        )
    return int(digits)


def _own_line(comment: Token, text: str) -> bool:
    """Whether nothing but spaces comes before ``comment`` on its line."""
    start = _offsets(comment)[0]
    return not text[text.rfind("\n", 0, start) + 1 : start].strip()


def _comment_runs(comments: list[Token], text: str) -> list[tuple[list[Token], int | None]]:
    """Runs of full-line comments on consecutive lines, each with the offset of the
    token on the line right after the run (None if a blank line or the end follows)."""
    runs: list[tuple[list[Token], int | None]] = []
    run: list[Token] = []
    for token in comments:
        if not _own_line(token, text):
            run = []
            continue
        if not run or _line(token) != _line(run[-1]) + 1:
            run = []
            runs.append((run, None))
        run.append(token)
        gap = _SPACES.match(text, _offsets(token)[1])
        assert gap is not None  # \s* matches anywhere
        after = gap.end() if gap.group().count("\n") == 1 and gap.end() < len(text) else None
        runs[-1] = (run, after)
    return runs


_SPACES = re.compile(r"\s*")


def _text(run: list[Token]) -> str:
    return "\n".join(token.value[1:].strip() for token in run)


def _doc_comments(comments: list[Token], text: str) -> dict[int, str]:
    """The offset of each token right under a run of full-line comments -> the run's text:
    a definition's doc comment, looked up by the offset of its keyword. A trailing
    comment, or a blank line before the keyword, makes none."""
    return {after: _text(run) for run, after in _comment_runs(comments, text) if after is not None}


def _file_doc(comments: list[Token], text: str, spec: ast.SpecFile) -> str:
    """The comment run that opens the file, unless it documents the block right after it."""
    if not comments or text[: _offsets(comments[0])[0]].strip():
        return ""
    run, after = _comment_runs(comments, text)[0]
    if after is not None:
        line = _line(run[-1]) + 1
        column = after - text.rfind("\n", 0, after)
        if any(
            (d.span.line, d.span.column) == (line, column) and not d.is_network
            for d in spec.definitions
        ):
            return ""
    return _text(run)


def _syntax_error(err: UnexpectedInput, text: str, path: str) -> SpecError:
    line, column = err.line, err.column
    if isinstance(err, UnexpectedCharacters):
        char = text[err.pos_in_stream or 0]
        shown = repr(char) if not char.isprintable() or char == "'" else f"'{char}'"
        return SpecError(
            f"unexpected character {shown}", Span(path, line, column, line, column + 1)
        )
    if isinstance(err, UnexpectedEOF) or (
        isinstance(err, UnexpectedToken) and err.token.type == "$END"
    ):
        # Point just past the last thing written, not at trailing blank lines.
        return SpecError(
            f"unexpected end of file, {_expected(set(getattr(err, 'accepts', None) or err.expected))}",
            end_of_text(text, path),
        )
    assert isinstance(err, UnexpectedToken)
    token = err.token
    end_column = token.end_column if token.end_line == token.line else column + 1
    return SpecError(
        f"unexpected {_describe(token)}, {_expected(set(err.accepts or err.expected))}",
        Span(path, line, column, line, end_column),
    )


def _describe(token: Token) -> str:
    if token.type == "NAME":
        return f"name '{token}'"
    if token.type in ("INT", "FLOAT"):
        return f"number {token}"
    if token.type == "STRING":
        return f"string {token}"
    return f"'{token}'"


def _span(path: str, meta) -> Span:
    return Span(path, meta.line, meta.column, meta.end_line, meta.end_column)


def _tspan(path: str, token: Token) -> Span:
    line, column, end_line, end_column = token.line, token.column, token.end_line, token.end_column
    assert line is not None and column is not None and end_line is not None
    assert end_column is not None
    return Span(path, line, column, end_line, end_column)


def _offsets(token: Token) -> tuple[int, int]:
    """A lexed token's start and end offsets in the text (see ``_line``)."""
    assert token.start_pos is not None and token.end_pos is not None
    return token.start_pos, token.end_pos


def _line(token: Token) -> int:
    """A lexed token's line (Lark types its positions as optional: they are
    missing only on tokens built by hand, which netc never makes)."""
    assert token.line is not None
    return token.line


@v_args(meta=True)
class _ToAst(Transformer):
    def __init__(self, path: str, docs: dict[int, str]):
        super().__init__()
        self.path = path
        self.docs = docs

    # -- expressions
    def int(self, meta, children):
        return ast.Literal(_integer(children[0], self.path), _span(self.path, meta))

    def float(self, meta, children):
        return ast.Literal(float(children[0]), _span(self.path, meta))

    def true(self, meta, children):
        return ast.Literal(True, _span(self.path, meta))

    def false(self, meta, children):
        return ast.Literal(False, _span(self.path, meta))

    def string(self, meta, children):
        return ast.Literal(str(children[0])[1:-1], _span(self.path, meta))

    def ref(self, meta, children):
        return ast.Ref(str(children[0]), _span(self.path, meta))

    def tuple(self, meta, children):
        return ast.TupleExpr(tuple(c for c in children if c is not None), _span(self.path, meta))

    def neg(self, meta, children):
        return ast.Neg(children[0], _span(self.path, meta))

    def _binop(self, op, meta, children):
        return ast.BinOp(op, children[0], children[1], _span(self.path, meta))

    def add(self, meta, children):
        return self._binop("+", meta, children)

    def sub(self, meta, children):
        return self._binop("-", meta, children)

    def mul(self, meta, children):
        return self._binop("*", meta, children)

    def div(self, meta, children):
        return self._binop("/", meta, children)

    def floordiv(self, meta, children):
        return self._binop("//", meta, children)

    # -- calls and statements
    def positional(self, meta, children):
        return ast.Arg(None, children[0], _span(self.path, meta))

    def keyword(self, meta, children):
        return ast.Arg(str(children[0]), children[1], _span(self.path, meta))

    def call(self, meta, children):
        name, *args = children
        args = tuple(a for a in args if a is not None)
        return ast.Call(str(name), args, _span(self.path, meta), _tspan(self.path, name))

    def chain(self, meta, children):
        return tuple(children)

    def guard(self, meta, children):
        return children[0]

    def layer_stmt(self, meta, children):
        name, chain, guard = children
        name_span = _tspan(self.path, name) if name is not None else None
        return ast.LayerStmt(
            str(name) if name is not None else None, chain, guard, _span(self.path, meta), name_span
        )

    def repeat(self, meta, children):
        chain, count = children
        return ast.Repeat(chain, count, _span(self.path, meta))

    def group(self, meta, children):
        return ast.GroupStmt(tuple(children), _span(self.path, meta))

    def branch(self, meta, children):
        return tuple(children)  # (scale or None, the statement)

    def join_kind(self, meta, children):
        return str(children[0])

    def join_stmt(self, meta, children):
        kind, *branches = children
        scales = tuple(scale for scale, _ in branches)
        return ast.ConcatStmt(
            tuple(stmt for _, stmt in branches),
            _span(self.path, meta),
            kind,
            scales if any(s is not None for s in scales) else (),
        )

    def input_stmt(self, meta, children):
        token = children[0]
        if len(str(token)) > 3 * MAX_DIGITS + 2:
            raise SpecError(
                f"input shape too large: {str(token)[:40]}...", _tspan(self.path, token)
            )
        c, h, w = (int(v) for v in str(token).split("x"))
        return ast.InputStmt((c, h, w), _span(self.path, meta))

    def aux_stmt(self, meta, children):
        name, chain, tap, weight, guard = children
        return ast.AuxStmt(
            str(name),
            chain,
            str(tap),
            weight,
            guard,
            _span(self.path, meta),
            _tspan(self.path, name),
            _tspan(self.path, tap),
        )

    def init_stmt(self, meta, children):
        target, call = children
        return ast.InitStmt(str(target), call, _span(self.path, meta), _tspan(self.path, target))

    # -- definitions
    def param(self, meta, children):
        name, type_, default = children
        return ast.Param(
            str(name), str(type_), default, _span(self.path, meta), _tspan(self.path, type_)
        )

    def params(self, meta, children):
        return tuple(c for c in children if c is not None)

    def body(self, meta, children):
        return tuple(children)

    def _definition(self, meta, children, is_network: bool):
        name, params, body = children
        return ast.BlockDef(
            str(name),
            params,
            body,
            is_network,
            self.docs.get(meta.start_pos, ""),
            _span(self.path, meta),
            _tspan(self.path, name),
        )

    def block_def(self, meta, children):
        return self._definition(meta, children, is_network=False)

    def network_def(self, meta, children):
        return self._definition(meta, children, is_network=True)

    def import_stmt(self, meta, children):
        return ast.Import(str(children[0])[1:-1], _span(self.path, meta))

    def start(self, meta, children):
        imports = tuple(c for c in children if isinstance(c, ast.Import))
        definitions = tuple(c for c in children if isinstance(c, ast.BlockDef))
        return ast.SpecFile(self.path, imports, definitions)
