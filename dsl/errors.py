"""One error type for every bad input, rendered as ``file:line:col: error: ...``.

Syntax, name, type and shape errors all end here. The renderer shows the
offending source line with a caret under the span, then an optional hint.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

# Text of every file the front end has read, by path, so that an error raised
# anywhere in the pipeline can show its line. Command-line input registers
# itself here too, under a pseudo-path such as "<command line>".
_SOURCES: dict[str, str] = {}


def register_source(path: str, text: str) -> None:
    _SOURCES[path] = text


@dataclass(frozen=True, slots=True)
class Span:
    """Where a piece of spec text lives: 1-based line and column, end exclusive."""

    file: str
    line: int
    column: int
    end_line: int
    end_column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class SpecError(Exception):
    """A user-facing error: a message, the span it is about and an optional hint."""

    def __init__(self, message: str, span: Span | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.span = span
        self.hint = hint

    def render(self) -> str:
        if self.span is None:
            lines = [f"netc: error: {self.message}"]
        else:
            lines = [f"{self.span}: error: {self.message}"]
            lines.extend(_excerpt(self.span))
        if self.hint:
            lines.append(f"hint: {self.hint}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render()


WINDOW = 100  # columns of a long source line shown around the caret


def _excerpt(span: Span) -> list[str]:
    text = _SOURCES.get(span.file)
    if text is None:
        return []
    # Lines as the parser counts them: only "\n" ends one (not a form feed or U+2028).
    lines = text.split("\n")
    if not 1 <= span.line <= len(lines):
        return []
    line = lines[span.line - 1].rstrip("\r")
    line = "".join(c if c.isprintable() or c == "\t" else " " for c in line).expandtabs(1)
    end = span.end_column if span.end_line == span.line else len(line) + 1
    column = min(max(span.column, 1), len(line) + 1)
    width = max(1, min(end, len(line) + 1) - column)
    if len(line) > WINDOW:  # a window around the caret, marked where it was cut
        start = max(0, min(column - 1 - WINDOW // 2, len(line) - WINDOW))
        shown = line[start : start + WINDOW]
        left, right = ("..." if start else ""), ("..." if start + WINDOW < len(line) else "")
        line = left + shown + right
        column = column - start + len(left)
        width = max(1, min(width, WINDOW - (column - 1 - len(left))))
    gutter = f"{span.line:>5} | "
    return [f"{gutter}{line}", " " * (len(gutter) - 2) + "| " + " " * (column - 1) + "^" * width]


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """A 'did you mean X?' hint for the closest candidate, or None."""
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"did you mean {close[0]}?" if close else None
