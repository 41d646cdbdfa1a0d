"""The network as a Graphviz (DOT) picture: one box per layer or collapsed
block, with its output shape; branches fan out and join at a concat; aux
heads hang off their taps with dashed edges. Plain text out, no Graphviz
needed to produce it (``dot -Tsvg`` draws it).
"""

from __future__ import annotations

import json

from compiler import ir
from compiler.display import describe


def _label(*lines: str) -> str:
    return json.dumps("\n".join(lines))  # a DOT string is a JSON string


def _shape(shape: ir.Shape) -> str:
    return "x".join(map(str, shape))


class _Dot:
    def __init__(self, max_depth: int):
        self.max_depth = max_depth
        self.lines: list[str] = []
        self.count = 0

    def node(self, label: str, **attrs: str) -> str:
        self.count += 1
        name = f"n{self.count}"
        extra = "".join(f", {k}={v}" for k, v in attrs.items())
        self.lines.append(f"  {name} [label={label}{extra}];")
        return name

    def edge(self, src: str, dst: str, **attrs: str) -> None:
        extra = ", ".join(f"{k}={v}" for k, v in attrs.items())
        self.lines.append(f"  {src} -> {dst}" + (f" [{extra}]" if extra else "") + ";")

    def chain(
        self, nodes: tuple[ir.Node, ...], src: str, prefix: str, depth: int, taps=None
    ) -> str:
        for node in nodes:
            src = self.one(node, src, prefix, depth)
            if taps is not None and node.name in taps:
                for head in taps[node.name]:
                    out = self.one(head.head, src, "", depth, style="dashed")
                    self.lines.append(f"  {out} [style=dashed];")
        return src

    def one(
        self, node: ir.Node, src: str, prefix: str, depth: int, style: str | None = None
    ) -> str:
        edge = {"style": style} if style else {}
        path = prefix if isinstance(node, ir.Concat) else ir.join(prefix, node.name)
        if isinstance(node, ir.Layer):
            title = path if node.name is not None else ""
            dst = self.node(
                _label(*filter(None, (title, describe(node.op), _shape(node.out_shape))))
            )
            self.edge(src, dst, **edge)
            return dst
        if isinstance(node, ir.Concat):
            outs = [self.one(branch, src, prefix, depth, style) for branch in node.branches]
            join = self.node(_label("concat", _shape(node.out_shape)), shape="diamond")
            for out in outs:
                self.edge(out, join)
            return join
        kind = node.block if isinstance(node, ir.Block) else "sequential"
        if depth >= self.max_depth:
            dst = self.node(_label(path, kind, _shape(node.out_shape)), style="rounded,bold")
            self.edge(src, dst, **edge)
            return dst
        self.lines.append(f"  subgraph cluster_{self.count} {{")
        self.lines.append(f"  label={_label(f'{path}: {kind}')};")
        out = self.chain(ir.children(node), src, path, depth + 1)
        self.lines.append("  }")
        return out


def to_dot(net: ir.Network, max_depth: int = 1, deploy: bool = False) -> str:
    dot = _Dot(max_depth)
    src = dot.node(_label("input", _shape(net.input_shape)), shape="oval")
    taps: dict[str, list[ir.Aux]] = {}
    for head in () if deploy else net.active_aux():
        taps.setdefault(head.tap, []).append(head)
    body = tuple(n for n in net.body if not isinstance(n, ir.Layer) or net.enabled(n.guard))
    out = dot.chain(body, src, "", 0, taps)
    dot.edge(out, dot.node(_label("output", _shape(net.out_shape)), shape="oval"))
    header = [
        f"digraph {json.dumps(net.name)} {{",
        "  rankdir=TB;",
        '  node [shape=box, fontname="Helvetica", fontsize=10];',
    ]
    return "\n".join([*header, *dot.lines, "}"]) + "\n"
