"""What the passes share: a bottom-up rewriter of node sequences, fused-layer
construction, and a consistency check of a rewritten network.

A *sequence* is a list of nodes run one after the other: the network body, a
block body, the items of a named chain. Passes that fuse neighbours (a conv
and its batch norm, a conv and its ReLU) are functions of one sequence and its
module path; ``rewrite`` applies such a function to every sequence, innermost
first. Removing an item from a chain keeps the names of the others, so every
node that survives a pass keeps its module path, and with it its
``state_dict`` keys.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeGuard

from compiler import expr as ex
from compiler import ir, shapes

Nodes = tuple[ir.Node, ...]
SequenceFn = Callable[[Nodes, str], Nodes]


def rewrite(nodes: Nodes, prefix: str, fn: SequenceFn) -> Nodes:
    """``fn`` applied to every sequence under ``nodes`` (children first), then to ``nodes``."""
    return fn(tuple(rewrite_node(node, prefix, fn) for node in nodes), prefix)


def rewrite_node(node: ir.Node, prefix: str, fn: SequenceFn) -> ir.Node:
    """``node`` with ``fn`` applied to every sequence inside it."""
    if isinstance(node, ir.Seq):
        return node.model_copy(
            update={"items": rewrite(node.items, ir.join(prefix, node.name), fn)}
        )
    if isinstance(node, ir.Block):
        return node.model_copy(update={"body": rewrite(node.body, ir.join(prefix, node.name), fn)})
    if isinstance(node, ir.Concat):
        return node.model_copy(
            update={"branches": tuple(rewrite_node(b, prefix, fn) for b in node.branches)}
        )
    if isinstance(node, ir.Group):  # a sequence in the enclosing block's scope
        return node.model_copy(update={"items": rewrite(node.items, prefix, fn)})
    if isinstance(node, ir.Fork):
        branches = tuple(
            b if b.node is None else b.model_copy(update={"node": rewrite_node(b.node, prefix, fn)})
            for b in node.branches
        )
        return node.model_copy(update={"branches": branches})
    return node


def rewrite_network(net: ir.Network, fn: SequenceFn, name: str) -> ir.Network:
    """The network with ``fn`` applied to every sequence of its body, and ``name``
    recorded among its passes. Aux heads are rewritten too (they run in training)."""
    aux = tuple(a.model_copy(update={"head": rewrite_node(a.head, "", fn)}) for a in net.aux)
    return net.model_copy(
        update={"body": rewrite(net.body, "", fn), "aux": aux, "passes": (*net.passes, name)}
    )


def is_layer(node: ir.Node | None, *ops: str) -> TypeGuard[ir.Layer]:
    """An unconditional layer of one of these ops."""
    return isinstance(node, ir.Layer) and node.guard is None and node.op.op in ops


def named(node: ir.Node) -> str:
    """The name of a concat branch (the grammar names them all)."""
    assert node.name is not None, f"an unnamed {node.kind} branch"
    return node.name


def as_fused(layer: ir.Layer, path: str) -> ir.FusedConv:
    """A conv layer (plain or already fused) as a ``FusedConv`` op; ``path`` is its module path."""
    op = layer.op
    if isinstance(op, ir.FusedConv):
        return op
    assert isinstance(op, ir.Conv), f"{op.op} is no convolution"
    fields = op.model_dump(exclude={"op"})
    source = ir.ConvSource(conv=path, out_channels=op.out_channels, bias=op.bias)
    return ir.FusedConv(**fields, sources=(source,))


def with_op(layer: ir.Layer, op) -> ir.Layer:
    """``layer`` with a new op: parameters and MACs recomputed, the shape checked.
    Expressions of fields whose value changed are dropped."""
    out_shape, params, macs = shapes.infer(op, layer.in_shape)
    if out_shape != layer.out_shape:
        raise ValueError(
            f"{op.op} changes the shape of '{layer.name}': {out_shape} vs {layer.out_shape}"
        )
    exprs = {
        k: v for k, v in layer.exprs.items() if getattr(op, k, None) == getattr(layer.op, k, None)
    }
    return layer.model_copy(update={"op": op, "params": params, "macs": macs, "exprs": exprs})


def taps(net: ir.Network) -> frozenset[str]:
    """Top-level names aux heads read: fusing them away would change what the heads see."""
    return frozenset(a.tap for a in net.aux)


# -- checking -------------------------------------------------------------------------------------


def verify(net: ir.Network) -> None:
    """Check that every node's shapes, parameters and MACs agree with shape
    inference and with its neighbours, and that every expression it records
    evaluates, in its scope, to the value it stands for; a failure is a bug
    in a pass (or in elaboration)."""
    out = _verify_sequence(net.body, net.input_shape, net.enabled, "")
    if out != net.out_shape:
        raise ValueError(f"the body gives {out}, the network says {net.out_shape}")
    verify_exprs(net)


def verify_exprs(net: ir.Network) -> None:
    """Every expression in ``net`` evaluated against the values in scope: the
    network's parameters, or a block instance's arguments and ``in_channels``."""

    def check(expr: ex.Expr, want: object, env: dict, where: str) -> None:
        got = ex.evaluate(expr, env)
        if isinstance(want, tuple) and len(want) == 2 and not isinstance(got, tuple):
            got = (0, 0) if got == "valid" else (got, got)  # a pair written as one number
        if got != want or isinstance(got, bool) != isinstance(want, bool):  # True == 1
            raise ValueError(f"{where or 'network'}: {ex.to_python(expr)} is {got!r}, not {want!r}")

    def node(n: ir.Node, env: dict, where: str) -> None:
        here = ir.join(where, n.name) if n.name else where
        if n.channels_expr is not None:
            check(n.channels_expr, n.out_shape[0], env, here)
        if isinstance(n, ir.Layer):
            for field, expr in n.exprs.items():
                check(expr, getattr(n.op, field), env, f"{here}.{field}")
            if n.guard is not None:
                ex.evaluate(n.guard, env)
        elif isinstance(n, ir.Block):
            check(n.in_channels_expr, n.in_shape[0], env, f"{here} in_channels")
            for arg, expr in n.arg_exprs.items():
                check(expr, n.args[arg], env, f"{here}({arg}=...)")
            inner = {**n.args, "in_channels": n.in_shape[0]}
            for child in n.body:
                node(child, inner, here)
        elif isinstance(n, ir.Fork):
            if n.split_exprs:
                assert isinstance(n.head.op, ir.FusedConv)
                check(ex.Tuple(items=n.split_exprs), n.head.op.split, env, f"{here} split")
            for child in ir.children(n):
                node(child, env, where)
        else:
            for child in ir.children(n):
                node(child, env, here if isinstance(n, ir.Seq) else where)

    for n in net.body:
        node(n, dict(net.values), "")
    for head in net.aux:
        if head.guard is not None:
            ex.evaluate(head.guard, net.values)
        node(head.head, dict(net.values), "")


def _verify_sequence(nodes: Nodes, shape: ir.Shape, enabled, where: str) -> ir.Shape:
    for node in nodes:
        if isinstance(node, ir.Layer) and not enabled(node.guard):
            continue
        shape = _verify_node(node, shape, enabled, where)
    return shape


def _verify_node(node: ir.Node, shape: ir.Shape, enabled, where: str) -> ir.Shape:
    here = ir.join(where, node.name) if node.name else where
    if node.in_shape != shape:
        raise ValueError(f"{here or 'network'}: input {node.in_shape}, but it is given {shape}")
    if isinstance(node, ir.Layer):
        out, params, macs = shapes.infer(node.op, shape)
        if (out, params, macs) != (node.out_shape, node.params, node.macs):
            raise ValueError(
                f"{here}: recorded {node.out_shape}, {node.params} params, {node.macs} MACs; "
                f"inferred {out}, {params}, {macs}"
            )
        return out
    if isinstance(node, ir.Seq):
        out = _verify_sequence(node.items, shape, enabled, here)
    elif isinstance(node, ir.Block):
        out = _verify_sequence(node.body, shape, enabled, here)
    elif isinstance(node, ir.Group):
        out = _verify_sequence(node.items, shape, enabled, where)
    elif isinstance(node, ir.Concat):
        outs = [_verify_node(b, shape, enabled, where) for b in node.branches]
        out = _joined(outs, here, node.join)
    else:
        head = _verify_node(node.head, shape, enabled, where)
        assert isinstance(node.head.op, ir.FusedConv)
        split = node.head.op.split
        if sum(split) != head[0]:
            raise ValueError(f"{here}: head split {split} does not add up to {head[0]} channels")
        outs = []
        for b in node.branches:
            given = shape if b.piece is None else (split[b.piece], *head[1:])
            outs.append(given if b.node is None else _verify_node(b.node, given, enabled, where))
        out = _joined(outs, here)
    if out != node.out_shape:
        raise ValueError(f"{here or 'network'}: output {node.out_shape}, but its body gives {out}")
    return out


def _joined(outs: list[ir.Shape], where: str, join: str = "cat") -> ir.Shape:
    if join != "cat":
        if len({len(o) for o in outs}) != 1:
            raise ValueError(f"{where}: {join} branches differ in rank: {outs}")
        out = tuple(max(dims) for dims in zip(*outs))
        if any(d not in (1, m) if join == "mul" else d != m for o in outs for d, m in zip(o, out)):
            raise ValueError(f"{where}: {join} branches disagree: {outs}")
        return out
    if any(o[1:] != outs[0][1:] for o in outs):
        raise ValueError(f"{where}: branches disagree on height x width: {outs}")
    return (sum(o[0] for o in outs), *outs[0][1:])
