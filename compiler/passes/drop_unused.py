"""Drop what inference never uses: aux heads, dropout, layers switched off.

The aux heads' names are kept in ``Network.dropped_aux``, so that loading a
training checkpoint into the deploy model drops their keys explicitly, and
only theirs. Everything dropped here is weightless and keeps the shape, so
no other node changes; a chain or block left empty goes too (one that is a
concat branch stays, as the identity).
"""

from __future__ import annotations

from compiler import ir
from compiler.passes.rewrite import Nodes, is_layer, rewrite_network

UNUSED_OPS = ("dropout", "dropout2d")


def drop_unused(net: ir.Network) -> ir.Network:
    def keep(node: ir.Node) -> bool:
        if isinstance(node, ir.Layer):
            return net.enabled(node.guard) and not is_layer(node, *UNUSED_OPS)
        if isinstance(node, ir.Seq):
            return bool(node.items)
        if isinstance(node, ir.Block):
            return bool(node.body)
        return True

    def sequence(nodes: Nodes, prefix: str) -> Nodes:
        return tuple(node for node in nodes if keep(node))

    # An aux head tapped off a dropped layer would lose its input: heads go first.
    dropped = tuple(a.name for a in net.active_aux())
    net = net.model_copy(update={"aux": (), "dropped_aux": (*net.dropped_aux, *dropped)})
    return rewrite_network(net, sequence, "drop_unused")
