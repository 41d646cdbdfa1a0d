"""The network as a picture, through Graphviz: ``to_dot`` writes the DOT text
(with the ``graphviz`` package, which quotes every name and label), ``render``
draws it with Graphviz's ``dot`` as SVG or PNG.

One box per layer (its name, what it does, its parameters and MACs), or per
block deeper than ``max_depth`` blocks; expanded blocks and named chains are
clusters, nested as in the spec. Every edge carries the tensor it passes
(C x H x W). A concat's branches run left to right in spec order into a
``concat`` node. Aux heads hang off their taps, dashed and marked train only.
A deploy build shows what its passes did: fused convolutions are filled and
say what they absorbed, and sibling 1x1 convolutions fused into one feed a
``split`` node that hands each branch its slice.
"""

from __future__ import annotations

import itertools

import graphviz

from compiler import ir
from compiler.display import describe

FORMATS = ("svg", "png", "dot")
FUSED = "#e3ecfa"  # fill of deploy nodes made by a pass


class RenderError(Exception):
    """Graphviz could not draw the picture (``dot`` missing or failing); ``hint`` says why."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


def shape_text(shape: ir.Shape) -> str:
    """``192x28x28``: a tensor as an edge label, without the batch dimension."""
    return "x".join(map(str, shape))


def _amount(n: int) -> str:
    """Three significant digits and an SI suffix: ``118M``, ``12.8M``, ``1.02G``."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= scale:
            return f"{n / scale:.3g}{suffix}"
    return str(n)


def _stats(params: int, macs: int) -> str:
    parts = [f"{params:,} params" if params else "", f"{_amount(macs)} MACs" if macs else ""]
    return " · ".join(filter(None, parts))


def _label(*lines: str) -> str:
    return "\n".join(filter(None, lines))


def _shown_name(node: ir.Node) -> str:
    """A node's own name, as a label line; chain items (``0``, ``1``) go unnamed."""
    return "" if node.name is None or node.name.isdigit() else node.name


class _Picture:
    def __init__(self, net: ir.Network, max_depth: int):
        self.net = net
        self.max_depth = max_depth
        self.ids: set[str] = set()
        # Edges are added to the top graph once every node is placed: an edge
        # written inside a cluster would pull both its ends into that cluster.
        self.edges: list[tuple[str, str, dict[str, str]]] = []
        # The first node of each branch of each concat, in spec order: one rank,
        # left to right (``ordering=out`` alone does not hold across clusters).
        self.rows: list[list[str]] = []

    def new_id(self, path: str, what: str = "") -> str:
        base = f"{path}/{what}".strip("/") if what else path or "node"
        name, n = base, 1
        while name in self.ids:
            n += 1
            name = f"{base}~{n}"
        self.ids.add(name)
        return name

    def edge(self, src: str, dst: str, shape: ir.Shape, **attrs: str) -> None:
        self.edges.append((src, dst, {"label": shape_text(shape), **attrs}))

    # -- nodes -------------------------------------------------------------------

    def layer(self, g: graphviz.Digraph, node: ir.Layer, path: str, **attrs: str) -> str:
        op = node.op
        what = describe(op)
        name = _shown_name(node)
        if name == what.partition(" ")[0]:  # ``dropout`` is a dropout 0.4: say it once
            name = ""
        if isinstance(op, ir.FusedConv):
            style = ",".join(filter(None, ["filled", attrs.get("style", "")]))
            attrs = {**attrs, "style": style, "fillcolor": FUSED}
            if len(op.sources) > 1:  # sibling convolutions: name them, not their joint name
                parent = path.rpartition(".")[0]
                name = " + ".join(s.conv.removeprefix(parent + ".") for s in op.sources)
            else:
                what = f"fused {what}"
        dst = self.new_id(path, "" if node.name is not None else op.op)
        g.node(dst, _label(name, what, _stats(node.params, node.macs)), **attrs)
        return dst

    def collapsed(self, g: graphviz.Digraph, node: ir.Block, path: str, **attrs: str) -> str:
        leaves = [layer for _, layer in ir.layers((node,)) if self.net.enabled(layer.guard)]
        what = node.block
        if len(leaves) <= 3:  # small blocks say what they do: ``ConvBlock: conv 3x3, relu``
            what += ": " + ", ".join(describe(layer.op) for layer in leaves)
        styles = ["rounded", "bold", *attrs.pop("style", "").split(",")]
        if any(isinstance(layer.op, ir.FusedConv) for layer in leaves):
            attrs = {"fillcolor": FUSED, **attrs}
            styles.append("filled")
        nodes = (node,)
        dst = self.new_id(path)
        label = _label(
            _shown_name(node), what, _stats(ir.total_params(nodes), ir.total_macs(nodes))
        )
        g.node(dst, label, style=",".join(filter(None, styles)), **attrs)
        return dst

    def aux(self, g: graphviz.Digraph, head: ir.Aux, src: str) -> None:
        """An aux head on ``src``, its tap: a dashed cluster, its own output node."""
        node = head.head
        note = f"train only, loss x{head.weight:g}"
        first = len(self.edges)
        expand = isinstance(node, ir.Seq) or (isinstance(node, ir.Block) and self.max_depth > 0)
        with g.subgraph(name=f"cluster_{self.new_id(head.name)}") as c:
            if expand:
                kind = f": {node.block}" if isinstance(node, ir.Block) else ""
                c.attr(
                    label=f"{head.name}{kind} · aux head, {note}",
                    style="rounded,dashed",
                    labelloc="b",
                )
                inner = int(isinstance(node, ir.Block))
                out = self.chain(c, ir.children(node), src, head.name, inner, style="dashed")
            else:
                c.attr(
                    label=f"{head.name} · aux head, {note}", style="rounded,dashed", labelloc="b"
                )
                out = self.one(c, node, src, "", 0, style="dashed")
            end = self.new_id(head.name, "output")
            c.node(
                end, f"{head.name} output\n({note.partition(',')[0]})", shape="oval", style="dashed"
            )
        self.edge(out, end, node.out_shape, style="dashed")
        for tail, _, attrs in self.edges[first:]:
            if tail == src:  # the head hangs off the body without bending it
                attrs["weight"] = "0"

    # -- structure ---------------------------------------------------------------

    def chain(
        self,
        g: graphviz.Digraph,
        nodes: tuple[ir.Node, ...],
        src: str,
        prefix: str,
        depth: int,
        **attrs: str,
    ) -> str:
        for node in nodes:
            if isinstance(node, ir.Layer) and not self.net.enabled(node.guard):
                continue
            src = self.one(g, node, src, prefix, depth, **attrs)
        return src

    def one(
        self, g: graphviz.Digraph, node: ir.Node, src: str, prefix: str, depth: int, **attrs: str
    ) -> str:
        """Draw ``node`` in ``g``, reading ``src``; return the node that holds its output."""
        edge = {"style": attrs["style"]} if "style" in attrs else {}
        if isinstance(node, ir.Group):  # a join's branch: its nodes, in the enclosing block
            return self.chain(g, node.items, src, prefix, depth, **attrs)
        if isinstance(node, ir.Concat):
            row: list[str] = []
            outs = [self.branch(g, b, src, prefix, depth, row, **attrs) for b in node.branches]
            self.rows.append(row)
            shapes = [b.out_shape for b in node.branches]
            word = {"cat": "concat", "add": "add", "mul": "mul"}[node.join]
            join = self.new_id(prefix, word)
            return self.join(g, join, zip(outs, shapes), word, node.scales, **attrs)
        if isinstance(node, ir.Fork):
            return self.fork(g, node, src, prefix, depth, **attrs)
        path = ir.join(prefix, node.name)
        if isinstance(node, ir.Layer):
            dst = self.layer(g, node, path, **attrs)
        elif isinstance(node, ir.Block) and depth >= self.max_depth:
            dst = self.collapsed(g, node, path, **attrs)
        else:
            kind = f": {node.block}" if isinstance(node, ir.Block) else ""
            name = _shown_name(node) or ".".join(path.split(".")[-2:])  # a chain item: branch2.1
            with g.subgraph(name=f"cluster_{self.new_id(path)}") as c:
                c.attr(label=f"{name}{kind}", style="rounded,dashed" if edge else "rounded")
                inner = depth + isinstance(node, ir.Block)
                return self.chain(c, ir.children(node), src, path, inner, **attrs)
        self.edge(src, dst, node.in_shape, **edge)
        return dst

    def branch(self, g, node: ir.Node, src: str, prefix: str, depth: int, row: list[str], **attrs):
        """``one`` for a branch reading ``src``; its first node is added to ``row``."""
        mark = len(self.edges)
        out = self.one(g, node, src, prefix, depth, **attrs)
        row.append(next((dst for tail, dst, _ in self.edges[mark:] if tail == src), out))
        return out

    def join(
        self, g, join: str, outs, word: str = "concat", scales: tuple[float, ...] = (), **attrs
    ) -> str:
        """The join node ``join`` (``concat``, ``add`` or ``mul``), joining ``outs``
        (node, output shape); a scaled branch's edge says its factor."""
        g.node(join, word, shape="invtrapezium", **attrs)
        edge = {"style": attrs["style"]} if "style" in attrs else {}
        outs = list(outs)
        for index, (out, shape) in enumerate(outs):
            scale = scales[index] if scales else 1.0
            factor = {"headlabel": f"x{scale:g}"} if scale != 1 else {}
            self.edge(out, join, shape, **edge, **factor)
        return join

    def fork(self, g, node: ir.Fork, src: str, prefix: str, depth: int, **attrs: str) -> str:
        """One fused convolution for the sibling 1x1 convolutions, a ``split`` node
        handing each branch its slice, the other branches on the fork's input."""
        edge = {"style": attrs["style"]} if "style" in attrs else {}
        fused = node.head.op
        assert isinstance(fused, ir.FusedConv)  # a fork's head always is
        head = self.layer(g, node.head, ir.join(prefix, node.head.name), **attrs)
        self.edge(src, head, node.in_shape, **edge)
        split = self.new_id(prefix, "split")
        sizes = "/".join(map(str, fused.split))
        g.node(split, f"split {sizes}", shape="trapezium", **attrs)
        self.edge(head, split, node.head.out_shape, **edge)
        join = self.new_id(prefix, "concat")
        spatial = node.head.out_shape[1:]
        outs = []
        row: list[str] = []
        self.rows.append(row)
        for branch in node.branches:
            if branch.piece is None:
                reads, shape = src, node.in_shape
            else:
                reads, shape = split, (fused.split[branch.piece], *spatial)
            if branch.node is None:  # the slice is the branch's output: a node for its name
                name = self.new_id(ir.join(prefix, branch.name))
                g.node(name, branch.name, shape="plain", **attrs)
                self.edge(reads, name, shape, **edge)
                outs.append((name, shape))
                row.append(name)
            else:
                out = self.branch(g, branch.node, reads, prefix, depth, row, **attrs)
                outs.append((out, branch.node.out_shape))
        return self.join(g, join, outs, "concat", (), **attrs)


def to_dot(net: ir.Network, max_depth: int = 1) -> str:
    """``net`` in Graphviz DOT: blocks nested ``max_depth`` deep are expanded,
    deeper ones drawn as one node; a deploy build (``net.passes``) as optimised."""
    return _graph(net, max_depth).source


def _graph(net: ir.Network, max_depth: int) -> graphviz.Digraph:
    pic = _Picture(net, max_depth)
    params, macs = ir.total_params(net.body), ir.total_macs(net.body)
    title = [
        f"{net.name} ({net.source})",
        f"input {shape_text(net.input_shape)} · {params:,} params · {_amount(macs)} MACs",
    ]
    if net.passes:
        title.append(f"deploy build: {', '.join(net.passes)}")
    if net.dropped_aux:
        title.append(f"aux heads dropped: {', '.join(net.dropped_aux)}")
    g = graphviz.Digraph(
        net.name,
        graph_attr={
            "rankdir": "TB",
            "label": graphviz.escape("\n".join(title) + "\n\n"),  # a path may hold a \\
            "labelloc": "t",
            "fontname": "Helvetica",
            "fontsize": "14",
            "ordering": "out",  # a node's outgoing edges left to right as written
            "newrank": "true",
            "nodesep": "0.25",
            "ranksep": "0.3",
        },
        node_attr={"shape": "box", "fontname": "Helvetica", "fontsize": "10", "margin": "0.1,0.04"},
        edge_attr={
            "fontname": "Helvetica",
            "fontsize": "9",
            "fontcolor": "#555555",
            "arrowsize": "0.6",
        },
    )
    g.attr("graph", fontname="Helvetica", fontsize="11", style="rounded", color="#888888")
    src = pic.new_id("input")
    g.node(src, "input", shape="oval")
    taps: dict[str, list[ir.Aux]] = {}
    for head in net.active_aux():
        taps.setdefault(head.tap, []).append(head)
    for node in net.body:
        if isinstance(node, ir.Layer) and not net.enabled(node.guard):
            continue
        src = pic.one(g, node, src, "", 0)
        for head in taps.get(node.name or "", ()):
            pic.aux(g, head, src)
    end = pic.new_id("output")
    g.node(end, "output", shape="oval")
    pic.edge(src, end, net.out_shape)
    # A tensor read by several nodes is labelled once, on its first solid edge.
    labelled: dict[tuple[str, str], int] = {}
    for i, (tail, _, attrs) in enumerate(pic.edges):
        key = (tail, attrs["label"])
        first = labelled.setdefault(key, i)
        if "style" in pic.edges[first][2] and "style" not in attrs:
            labelled[key] = i
    for i, (tail, dst, attrs) in enumerate(pic.edges):
        if labelled[tail, attrs["label"]] != i:
            attrs = {k: v for k, v in attrs.items() if k != "label"}
        g.edge(tail, dst, **attrs)
    for row in pic.rows:
        with g.subgraph() as same:
            same.attr(rank="same")
            for left, right in itertools.pairwise(row):
                same.edge(left, right, style="invis")
    return g


def render(dot: str, fmt: str) -> bytes:
    """Draw DOT text as ``fmt`` (``svg`` or ``png``) with Graphviz's ``dot``."""
    try:
        return graphviz.pipe("dot", fmt, dot.encode("utf-8"))
    except graphviz.ExecutableNotFound:
        raise RenderError(
            "cannot draw the picture: Graphviz's dot program is not installed",
            hint="install Graphviz (Debian/Ubuntu: apt-get install graphviz; macOS: brew "
            "install graphviz), or leave out -o to print DOT",
        ) from None
    except graphviz.CalledProcessError as err:
        detail = (err.stderr or b"").decode("utf-8", "replace").strip()
        raise RenderError(f"Graphviz's dot failed: {detail or err}") from None
