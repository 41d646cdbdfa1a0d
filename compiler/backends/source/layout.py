"""A class's forward lines and their ``# N x C x H x W`` comments, from its drafts."""

from __future__ import annotations

from dataclasses import dataclass, field

from compiler import ir

LINE_LENGTH = 100


@dataclass
class Shape:
    """One forward line's shape in one instance of the class."""

    out_shape: ir.Shape
    channels_expr: str  # out_shape[0] in the class's scope, as code; "": a number
    in_shape: ir.Shape


def _dims(shapes: list[Shape], inputs: list[ir.Shape], symbolic: bool) -> str:
    first = shapes[0]
    dims = ["N"]
    values = {s.out_shape[0] for s in shapes}
    exprs = {s.channels_expr for s in shapes}
    expr = next(iter(exprs))
    if symbolic:
        if len(exprs) == 1 and expr:
            dims.append(f"({expr})" if " " in expr else expr)
        elif len(values) == 1:
            dims.append(str(first.out_shape[0]))
        else:
            dims.append("C")
    else:
        named = f" ({expr})" if len(exprs) == 1 and expr else ""
        dims.append(f"{first.out_shape[0]}{named}")
    if len(first.out_shape) == 3:
        for axis, letter in ((1, "H"), (2, "W")):
            sizes = {s.out_shape[axis] for s in shapes}
            if len(sizes) == 1:
                dims.append(str(first.out_shape[axis]))
            elif all(s.out_shape[axis] == i[axis] for s, i in zip(shapes, inputs)):
                dims.append(letter)
            else:
                dims.append(letter + "'")
    return " x ".join(dims)


@dataclass
class Step:
    """A forward line: ``x = self.conv(x)``; ``guard`` puts it under an ``if``."""

    code: str
    shape: Shape | tuple[Shape, ...] | None  # None: no comment; a tuple: one per output
    guard: str | None = None


@dataclass
class Draft:
    """One instance's rendering of a class; instances with equal ``key`` share a class."""

    params: list[str]  # signature entries, rendered
    init: list[str]
    hyper: list[str]
    forward: list[Step]
    tail: list[str]  # lines after the forward steps (aux outputs), or []
    in_shape: ir.Shape
    takes_in_channels: bool = False

    @property
    def key(self) -> tuple:
        return (
            tuple(self.params),
            tuple(self.init),
            tuple(self.hyper),
            tuple((s.code, s.guard, s.shape is None) for s in self.forward),
            tuple(self.tail),
        )


@dataclass
class ClassPlan:
    name: str
    block: str
    doc: str
    drafts: list[Draft] = field(default_factory=list)


def forward_lines(drafts: list[Draft], symbolic: bool) -> list[str]:
    """The forward body of a class, with each line's shape comment."""
    first = drafts[0]
    inputs = [d.in_shape for d in drafts]
    starts = [Shape(d.in_shape, "in_channels" if symbolic else "", d.in_shape) for d in drafts]
    lines = [f"# {_dims(starts, inputs, symbolic)}"]
    steps = first.forward
    returns = bool(steps) and not first.tail and steps[-1].guard is None
    returns = returns and steps[-1].code.startswith("x = ")
    open_guard = None
    for index, step in enumerate(steps):
        if step.guard != open_guard and step.guard is not None:
            lines.append(f"if {step.guard}:")
        open_guard = step.guard
        indent = "    " if step.guard is not None else ""
        code = indent + step.code
        if returns and index == len(steps) - 1:
            code = "return " + step.code[len("x = ") :]
        if step.shape is not None:
            # Every instance of a class runs the same lines: their shapes are alike.
            shapes = [d.forward[index].shape for d in drafts]
            if isinstance(step.shape, tuple):  # several outputs (a split)
                split = [s for s in shapes if isinstance(s, tuple)]
                parts = [
                    _dims([s[k] for s in split], inputs, symbolic) for k in range(len(step.shape))
                ]
                comment = f"# {', '.join(parts)}"
            else:
                one = [s for s in shapes if isinstance(s, Shape)]
                comment = f"# {_dims(one, inputs, symbolic)}"
            if len(code) + len(comment) + 2 + 8 <= LINE_LENGTH:  # 8: forward's own indent
                code += "  " + comment
            else:  # on the line above, so that ruff need not split the statement around it
                lines.append(indent + comment)
        lines.append(code)
    lines.extend(first.tail)
    if not first.tail and not returns:
        lines.append("return x")
    return lines
