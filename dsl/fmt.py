"""``netc fmt``: the canonical layout of a ``.net`` file, comments kept.

The parse tree is turned into a small document of text, line breaks, groups
and indents (the Wadler / Prettier scheme), which is laid out in 100 columns:
a bracketed list (parameters, call arguments, a tuple) stays on one line when
it fits, holds no comment and was not written with a trailing comma; else it
is written one item per line, each with a trailing comma. A chain ``a -> b``
stays on one line when it would fit with all its arguments on one line and no
call after the first is written one argument per line; else it is written one
``-> call`` per line. Every other
statement gets a line of its own, indented four spaces per level.

Comments are not in the tree: the parser collects them, and each is put back
by position: one that followed code on its line stays at the end of the line
of the code before it; one on a line of its own stays on a line of its own
before the code after it (or, inside a line the layout keeps whole, moves to
the end of that line). Blank lines are kept, at most one in a row, none at
the start or end of a body. Nothing changes what the spec means: the tokens
are the same, in the same order, but for redundant parentheses, trailing
commas and empty ``()`` after a call.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field

from lark import Token, Tree

from dsl.errors import Span, SpecError
from dsl.parser import parse_tree

WIDTH = 100
INDENT = 4


# -- the document ----------------------------------------------------------------


@dataclass
class Text:
    text: str
    pos: int | None = None  # offset of the source token it prints, if any


class SoftLine:
    """Nothing on one line; a line break when its group is broken."""


class Line:
    """A space on one line; a line break when its group is broken."""


class HardLine:
    """Always a line break."""


@dataclass
class IfBreak:
    text: str  # printed only when the enclosing group is broken


@dataclass
class Group:
    parts: list
    broken: bool = False  # forced: a comment inside, a trailing comma, a hard line
    brackets: bool = True  # a bracketed list, which breaks when a group inside it does


@dataclass
class Chain(Group):
    """``a -> b -> c``: a group that does not break for a broken list in its first call
    (``conv(...) -> relu``), but does for one in a later call, and that stays on one line
    only if it would fit with every list in it on one line. So its layout does not
    depend on whether a list was broken by its length or by the trailing comma that a
    first run wrote for it: a second run changes nothing."""

    first: int = 0  # how many of ``parts`` are the first call
    brackets: bool = False


@dataclass
class Indent:
    parts: list


@dataclass
class _OutputLine:
    indent: int
    pieces: list[Text] = field(default_factory=list)
    trailing: list[Token] = field(default_factory=list)
    before: list[tuple[int, Token]] = field(default_factory=list)  # comment lines above it


def format_text(text: str, path: str = "<text>") -> str:
    """``text`` in the canonical layout; ``SpecError`` (positioned) if it does not parse.
    A byte-order mark is dropped."""
    text = text.removeprefix("\ufeff")
    tree, comments = parse_tree(text, path)
    try:
        doc = _Builder(text, comments).start(tree)
    except RecursionError:  # the parser bounds the nesting; this is the last guard
        raise SpecError("nested too deeply to format", Span(path, 1, 1, 1, 2)) from None
    lines = _layout(doc)
    return _render(lines, comments, text)


# -- from the parse tree to a document ---------------------------------------------

_COMMENT_OR_SPACE = re.compile(r"(\s|#[^\n]*)*")

_PRECEDENCE = {"add": 1, "sub": 1, "mul": 2, "div": 2, "floordiv": 2, "neg": 3}
_OPERATOR = {"add": "+", "sub": "-", "mul": "*", "div": "/", "floordiv": "//"}


class _Builder:
    def __init__(self, text: str, comments: list[Token]):
        self.text = text
        self.comment_pos = [_start(c) for c in comments]

    def _has_comment(self, start: int, end: int) -> bool:
        """Whether a comment starts strictly between offsets ``start`` and ``end``."""
        i = bisect.bisect_right(self.comment_pos, start)
        return i < len(self.comment_pos) and self.comment_pos[i] < end

    def _after(self, pos: int) -> int:
        """The offset of the first character at or after ``pos`` that is not a space or comment."""
        match = _COMMENT_OR_SPACE.match(self.text, pos)
        assert match is not None  # the pattern matches the empty string
        return match.end()

    def _trailing_comma(self, last_end: int, close: int) -> bool:
        """Whether a comma follows the last item of a list (past the closing parentheses
        of a parenthesised item, spaces and comments)."""
        pos = self._after(last_end)
        while pos < close and self.text[pos] == ")":
            pos = self._after(pos + 1)
        return pos < close and self.text[pos] == ","

    def _list(self, items: list, open_pos: int, close_pos: int, last_end: int, one: bool = False):
        """``( item, item )``: one line, or one item per line with trailing commas. ``one``:
        a one-element tuple, whose comma is always written."""
        if not items:
            return [Text("(", open_pos), Text(")", close_pos)]
        inner: list = [SoftLine()]
        for i, item in enumerate(items):
            if i:
                inner += [Text(","), Line()]
            inner += item
        inner.append(Text(",") if one else IfBreak(","))
        broken = self._has_comment(open_pos, close_pos) or (
            not one and self._trailing_comma(last_end, close_pos)
        )
        return [
            Group([Text("(", open_pos), Indent(inner), SoftLine(), Text(")", close_pos)], broken)
        ]

    def _body(self, stmts: list, open_pos: int, close_pos: int) -> list:
        if not stmts and not self._has_comment(open_pos, close_pos):
            return [Text("{", open_pos), Text("}", close_pos)]
        inner: list = []
        for stmt in stmts:
            inner += [HardLine(), *stmt]
        return [Text("{", open_pos), Indent(inner), HardLine(), Text("}", close_pos)]

    # -- top level

    def start(self, tree: Tree) -> list:
        parts: list = []
        for i, item in enumerate(tree.children):
            if i:
                parts.append(HardLine())
            parts += getattr(self, item.data)(item)
        return parts

    def import_stmt(self, tree: Tree) -> list:
        return [Text("import", tree.meta.start_pos), Text(" "), _token(tree.children[0])]

    def block_def(self, tree: Tree, keyword: str = "block") -> list:
        name, params, body = tree.children
        return [
            Text(keyword, tree.meta.start_pos),
            Text(" "),
            _token(name),
            *self.params(params),
            Text(" "),
            *self._body(
                [self.statement(s) for s in body.children],
                body.meta.start_pos,
                body.meta.end_pos - 1,
            ),
        ]

    def network_def(self, tree: Tree) -> list:
        return self.block_def(tree, "network")

    def params(self, tree: Tree) -> list:
        params = [p for p in tree.children if p is not None]
        items = []
        for p in params:
            name, type_, default = p.children
            item = [_token(name), Text(": "), _token(type_)]
            if default is not None:
                item += [Text(" = "), *self.expr(default)]
            items.append(item)
        last_end = params[-1].meta.end_pos if params else tree.meta.start_pos
        return self._list(items, tree.meta.start_pos, tree.meta.end_pos - 1, last_end)

    # -- statements

    def statement(self, tree: Tree) -> list:
        return getattr(self, tree.data)(tree)

    def layer_stmt(self, tree: Tree) -> list:
        name, chain, guard = tree.children
        parts = [_token(name), Text(" = ")] if name is not None else []
        parts += self.chain(chain)
        if guard is not None:
            parts += [Text(" if "), *self.expr(guard.children[0])]
        return parts

    def join_stmt(self, tree: Tree) -> list:
        """``concat``, ``add`` or ``mul``, its branches one per line."""
        kind, *branches = tree.children
        word = str(kind.children[0])
        start = tree.meta.start_pos
        brace = self._after(start + len(word))
        return [
            Text(word, start),
            Text(" "),
            *self._body([self.branch(b) for b in branches], brace, tree.meta.end_pos - 1),
        ]

    def branch(self, tree: Tree) -> list:
        scale, stmt = tree.children
        parts = [*self.expr(scale), Text(" * ")] if scale is not None else []
        return parts + self.statement(stmt)

    def group(self, tree: Tree) -> list:
        stmts = [self.statement(s) for s in tree.children]
        return self._body(stmts, tree.meta.start_pos, tree.meta.end_pos - 1)

    def link(self, tree: Tree) -> list:
        """One item of a chain: a call, or ``[a -> b] * n``."""
        if tree.data != "repeat":
            return self.call(tree)
        chain, count = tree.children
        return [Text("["), *self.chain(chain), Text("] * "), *self.expr(count, 4)]

    def input_stmt(self, tree: Tree) -> list:
        return [Text("input", tree.meta.start_pos), Text(" "), _token(tree.children[0])]

    def aux_stmt(self, tree: Tree) -> list:
        name, chain, tap, weight, guard = tree.children
        parts = [Text("aux", tree.meta.start_pos), Text(" "), _token(name), Text(" = ")]
        parts += [*self.chain(chain), Text(" at "), _token(tap)]
        if weight is not None:
            parts += [Text(" weight "), *self.expr(weight)]
        if guard is not None:
            parts += [Text(" if "), *self.expr(guard.children[0])]
        return parts

    def init_stmt(self, tree: Tree) -> list:
        target, call = tree.children
        return [
            Text("init", tree.meta.start_pos),
            Text(" "),
            _token(target),
            Text(" = "),
            *self.call(call),
        ]

    def chain(self, tree: Tree) -> list:
        """``a -> b -> c`` on one line, or one ``-> call`` per line below the first call;
        broken too when a comment sits between two calls."""
        first, *rest = tree.children
        if not rest:
            return self.link(first)
        links: list = []
        for call in rest:
            links += [Line(), Text("-> "), *self.link(call)]
        calls = tree.children
        broken = any(
            self._has_comment(a.meta.end_pos - 1, b.meta.start_pos) for a, b in zip(calls, rest)
        )
        head = self.link(first)
        return [Chain([*head, Indent(links)], broken, first=len(head))]

    def call(self, tree: Tree) -> list:
        name, *args = tree.children
        args = [a for a in args if a is not None]
        if not args:  # ``relu`` and ``relu()`` are the same call: written without ()
            return [_token(name)]
        items = []
        for arg in args:
            if arg.data == "keyword":
                key, value = arg.children
                items.append([_token(key), Text("="), *self.expr(value)])
            else:
                items.append(self.expr(arg.children[0]))
        assert isinstance(name, Token)
        open_pos = self._after(_start(name) + len(name))
        return [
            _token(name),
            *self._list(items, open_pos, tree.meta.end_pos - 1, args[-1].meta.end_pos),
        ]

    # -- expressions

    def expr(self, tree: Tree, need: int = 0) -> list:
        kind = tree.data
        if kind in _OPERATOR:
            left, right = tree.children
            level = _PRECEDENCE[kind]
            parts = [
                *self.expr(left, level),
                Text(f" {_OPERATOR[kind]} "),
                *self.expr(right, level + 1),
            ]
        elif kind == "neg":
            level = 3
            parts = [Text("-"), *self.expr(tree.children[0], 3)]
        else:
            level = 4
            if kind in ("true", "false"):
                parts = [Text(kind, tree.meta.start_pos)]
            elif kind == "tuple":
                items = [c for c in tree.children if c is not None]
                parts = self._list(
                    [self.expr(i) for i in items],
                    tree.meta.start_pos,
                    tree.meta.end_pos - 1,
                    items[-1].meta.end_pos,
                    one=len(items) == 1,
                )
            else:  # int, float, string, ref: one token, written as it was
                parts = [_token(tree.children[0])]
        if level < need:
            return [Text("("), *parts, Text(")")]
        return parts


def _token(token: Token | Tree) -> Text:
    """The text of one token of the tree, with its offset."""
    assert isinstance(token, Token)
    return Text(str(token), _start(token))


def _start(token: Token) -> int:
    assert token.start_pos is not None  # lexed tokens always have one
    return token.start_pos


# -- layout ------------------------------------------------------------------------

_FLAT, _BREAK = 0, 1


def _force(parts: list) -> tuple[bool, bool]:
    """Break every group that holds a hard line, every bracketed list that holds a
    broken group, and every chain whose later calls hold one; return whether ``parts``
    hold a hard line, and a broken group."""
    hard = broken = False
    for part in parts:
        if isinstance(part, HardLine):
            hard = True
        elif isinstance(part, Chain):  # each part walked once: chains nest in chains
            head_hard, head_broken = _force(part.parts[: part.first])
            later_hard, later_broken = _force(part.parts[part.first :])
            inner_hard = head_hard or later_hard
            part.broken = part.broken or inner_hard or later_broken
            inner_broken = part.broken or head_broken
            hard, broken = hard or inner_hard, broken or inner_broken
        elif isinstance(part, (Group, Indent)):
            inner_hard, inner_broken = _force(part.parts)
            if isinstance(part, Group):
                part.broken = part.broken or inner_hard or (inner_broken and part.brackets)
                inner_broken = part.broken
            hard, broken = hard or inner_hard, broken or inner_broken
    return hard, broken


def _fits(width: int, stack: list, flat: bool = False) -> bool:
    """Whether what is on ``stack`` (last first) fits in ``width`` up to its next line break;
    ``flat``: with every group on one line, even one that is broken."""
    stack = list(stack)
    while stack and width >= 0:
        mode, indent, part = stack.pop()
        if isinstance(part, Text):
            width -= len(part.text)
        elif isinstance(part, Line) and mode == _FLAT:
            width -= 1
        elif isinstance(part, (Line, SoftLine, HardLine)):
            if mode == _BREAK or isinstance(part, HardLine):
                return True
        elif isinstance(part, IfBreak):
            if mode == _BREAK:
                width -= len(part.text)
        elif isinstance(part, Group):
            inner = _BREAK if part.broken and not flat else mode
            stack.extend((inner, indent, p) for p in reversed(part.parts))
        elif isinstance(part, Indent):
            stack.extend((mode, indent, p) for p in reversed(part.parts))
        elif isinstance(part, list):
            stack.extend((mode, indent, p) for p in reversed(part))
    return width >= 0


def _layout(doc: list) -> list[_OutputLine]:
    _force(doc)
    lines = [_OutputLine(0)]
    column = 0
    stack: list = [(_BREAK, 0, p) for p in reversed(doc)]
    while stack:
        mode, indent, part = stack.pop()
        if isinstance(part, Text):
            lines[-1].pieces.append(part)
            column += len(part.text)
        elif isinstance(part, (Line, SoftLine, HardLine)):
            if mode == _BREAK or isinstance(part, HardLine):
                lines.append(_OutputLine(indent))
                column = indent
            elif isinstance(part, Line):
                lines[-1].pieces.append(Text(" "))
                column += 1
        elif isinstance(part, IfBreak):
            if mode == _BREAK:
                lines[-1].pieces.append(Text(part.text))
                column += len(part.text)
        elif isinstance(part, Group):
            # A chain is measured with its lists on one line even where one is broken: a
            # list broken for its length would otherwise count as flat in a first run,
            # and as broken in a second (by the trailing comma the first run wrote).
            flat = not part.broken and _fits(
                WIDTH - column,
                [*stack, *((_FLAT, indent, p) for p in reversed(part.parts))],
                flat=isinstance(part, Chain),
            )
            inner = _FLAT if flat else _BREAK
            stack.extend((inner, indent, p) for p in reversed(part.parts))
        elif isinstance(part, Indent):
            stack.extend((mode, indent + INDENT, p) for p in reversed(part.parts))
    return [line for line in lines if line.pieces]


# -- comments and blank lines --------------------------------------------------------


def _render(lines: list[_OutputLine], comments: list[Token], text: str) -> str:
    leaves = [
        (piece.pos, i)
        for i, line in enumerate(lines)
        for piece in line.pieces
        if piece.pos is not None
    ]
    positions = [pos for pos, _ in leaves]
    first_leaf: dict[int, int] = {}
    for pos, i in leaves:
        first_leaf.setdefault(i, pos)
    tail: list[Token] = []  # own-line comments after the last token
    for comment in comments:
        p = _start(comment)
        k = bisect.bisect_left(positions, p)
        before = leaves[k - 1][1] if k else None
        after = leaves[k] if k < len(leaves) else None
        own_line = not text[text.rfind("\n", 0, p) + 1 : p].strip()
        if own_line and after is not None and first_leaf[after[1]] == after[0]:
            target = lines[after[1]]
            closer = target.pieces[0].text in ("}", ")")
            target.before.append((target.indent + INDENT * closer, comment))
        elif before is not None and (not own_line or after is not None):
            lines[before].trailing.append(comment)
        elif after is not None:
            lines[after[1]].before.append((lines[after[1]].indent, comment))
        else:
            tail.append(comment)

    starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def line_of(pos: int) -> int:
        return bisect.bisect_right(starts, pos)

    out: list[str] = []
    last: int | None = None  # source line where the previous output line ended
    opened = False  # whether the previous output line opened a body or a list

    def emit(string: str, first: int | None, end: int | None, opens: bool, closes: bool) -> None:
        nonlocal last, opened
        gap = last is not None and first is not None and first - last >= 2
        if out and gap and not opened and not closes:
            out.append("")
        out.append(string)
        last = end if end is not None else last
        opened = opens

    for line in lines:
        for indent, comment in line.before:
            row = line_of(_start(comment))
            emit(" " * indent + comment.value.rstrip(), row, row, False, False)
        code = "".join(p.text for p in line.pieces)
        here = [line_of(p.pos) for p in line.pieces if p.pos is not None]
        ends = here + [line_of(_start(c)) for c in line.trailing]
        opens = code.endswith(("{", "("))
        closes = code.startswith(("}", ")"))
        if line.trailing:
            code += "  " + " ".join(c.value.rstrip() for c in line.trailing)
        emit(
            " " * line.indent + code,
            here[0] if here else None,
            max(ends, default=None),
            opens,
            closes,
        )
    for comment in tail:
        row = line_of(_start(comment))
        emit(comment.value.rstrip(), row, row, False, False)
    return "\n".join(out) + "\n" if out else ""
