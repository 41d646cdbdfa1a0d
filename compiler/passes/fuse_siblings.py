"""Horizontal fusion: sibling 1x1 convolutions reading the same tensor become one.

In an Inception block, branch 1, the 3x3 reduction and the 5x5 reduction are
1x1 convolutions of the block's input: one convolution with their weights
stacked along output channels does the same work in one pass over the input,
and its output is split back into the three pieces (TensorRT does this for
exactly this block). The concat becomes a ``Fork``: its ``head`` is the fused
convolution, named after the branches it serves (``branch1_branch2_branch3``),
each served branch loses its first layer and reads its piece instead.

A branch qualifies when its first layer (looking into chains and blocks) is a
``conv`` or ``fused_conv`` with a 1x1 kernel, stride 1, no padding,
dilation 1, one group and one source. Siblings fuse when there are at least
two of them and they agree on the ReLU. Run after ``fold_bn`` and
``fuse_relu`` so that the batch norms and ReLUs travel inside the head.
"""

from __future__ import annotations

from collections.abc import Iterator

from compiler import expr as ex
from compiler import ir
from compiler.passes.rewrite import Nodes, as_fused, is_layer, named, rewrite_network, with_op


def _pointwise(layer: ir.Layer) -> bool:
    op = layer.op
    if not isinstance(op, ir.Conv | ir.FusedConv):
        return False
    return (
        op.kernel_size == (1, 1)
        and op.stride == (1, 1)
        and op.padding in ((0, 0), "same")
        and op.dilation == (1, 1)
        and op.groups == 1
        and (isinstance(op, ir.Conv) or len(op.sources) == 1)
    )


def split_first(node: ir.Node, prefix: str) -> tuple[ir.Layer, str, ir.Node | None, ex.Expr] | None:
    """The first layer of a branch, its module path, what remains of the branch
    without it (None: nothing), and the layer's output channels as an
    expression in the branch's scope (the number where no expression in that
    scope is known). None when the branch starts otherwise."""
    if isinstance(node, ir.Layer):
        return node, ir.join(prefix, node.name), None, node.channels
    if not isinstance(node, (ir.Seq, ir.Block)):
        return None
    items = node.items if isinstance(node, ir.Seq) else node.body
    found = split_first(items[0], ir.join(prefix, node.name)) if items else None
    if found is None:
        return None
    layer, path, rest, expr = found
    remaining = ((rest,) if rest is not None else ()) + items[1:]
    if isinstance(node, ir.Block):  # leave the block's scope
        if not remaining:
            expr = node.channels
        elif not ex.is_const(expr):
            expr = ex.const(layer.out_shape[0])
    if not remaining:
        return layer, path, None, expr
    update: dict = {"in_shape": layer.out_shape}
    if isinstance(node, ir.Seq):
        update["items"] = remaining
    else:
        update["body"] = remaining
        update["in_channels_expr"] = expr
    return layer, path, node.model_copy(update=update), expr


def _fork(concat: ir.Concat, prefix: str, in_expr: ex.Expr, taken: set[str]) -> ir.Fork | None:
    if concat.join != "cat" or any(
        b.name is None or isinstance(b, ir.Group) for b in concat.branches
    ):  # only concats of named branches (a fork's branches are named)
        return None
    firsts = {}
    for index, branch in enumerate(concat.branches):
        found = split_first(branch, prefix)
        if found and is_layer(found[0], "conv", "fused_conv") and _pointwise(found[0]):
            firsts[index] = found
    groups: dict[bool, list[int]] = {}
    for index, (layer, *_) in firsts.items():
        groups.setdefault(bool(getattr(layer.op, "relu", False)), []).append(index)
    members = max(groups.values(), key=len, default=[])
    if len(members) < 2:
        return None

    ops = [as_fused(firsts[i][0], firsts[i][1]) for i in members]
    exprs = [firsts[i][3] for i in members]
    out_expr = ex.total(exprs)
    if ex.is_const(out_expr):
        out_expr = ex.const(sum(op.out_channels for op in ops))
    name = "_".join(named(concat.branches[i]) for i in members)
    while name in taken:
        name += "_fused"
    head_op = ops[0].model_copy(
        update={
            "out_channels": sum(op.out_channels for op in ops),
            "bias": any(op.bias for op in ops),
            "sources": tuple(s for op in ops for s in op.sources),
        }
    )
    head = ir.Layer(
        name=name,
        op=head_op,
        exprs={"in_channels": in_expr, "out_channels": out_expr},
        params=0,
        macs=0,
        in_shape=concat.in_shape,
        out_shape=(head_op.out_channels, *concat.in_shape[1:]),
        span=concat.span,
        channels_expr=out_expr,
    )
    head = with_op(head, head_op)
    branches = []
    for index, branch in enumerate(concat.branches):
        if index in members:
            piece, rest = members.index(index), firsts[index][2]
            branches.append(ir.ForkBranch(name=named(branch), piece=piece, node=rest))
        else:
            branches.append(ir.ForkBranch(name=named(branch), piece=None, node=branch))
    return ir.Fork(
        name=None,
        head=head,
        branches=tuple(branches),
        split_exprs=tuple(exprs),
        in_shape=concat.in_shape,
        out_shape=concat.out_shape,
        span=concat.span,
        channels_expr=concat.channels_expr,
    )


def _scope_names(nodes: Nodes) -> Iterator[str]:
    """The attribute names a sequence's nodes take in its block: named nodes, and
    those inside its joins and groups (no module of their own)."""
    for node in nodes:
        if isinstance(node, ir.Concat):
            yield from _scope_names(node.branches)
        elif isinstance(node, ir.Group):
            yield from _scope_names(node.items)
        elif node.name:
            yield node.name


def fuse_siblings(net: ir.Network) -> ir.Network:
    def sequence(nodes: Nodes, prefix: str) -> Nodes:
        taken = set(_scope_names(nodes))
        out = []
        for index, node in enumerate(nodes):
            fork = None
            if isinstance(node, ir.Concat):
                # Its input's channel count, in this scope: a concat is a statement of a
                # block body (whose input is in_channels) or of the network body.
                in_expr = (
                    nodes[index - 1].channels
                    if index
                    else (ex.ref("in_channels") if prefix else ex.const(net.input_shape[0]))
                )
                fork = _fork(node, prefix, in_expr, taken)
            if fork is not None:
                taken.add(named(fork.head))
            out.append(fork or node)
        return tuple(out)

    return rewrite_network(net, sequence, "fuse_siblings")
