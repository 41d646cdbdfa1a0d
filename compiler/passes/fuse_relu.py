"""Fuse a ReLU into the convolution before it: the convolution's module applies it
in place on its output (no module of its own, no second tensor), in the runtime
and in the generated source alike.

A ``conv`` or ``fused_conv`` followed, in the same sequence, by ``relu``
becomes a ``fused_conv`` with ``relu=True``, named like the conv.
"""

from __future__ import annotations

from compiler import ir
from compiler.passes.rewrite import Nodes, as_fused, is_layer, rewrite_network, taps, with_op


def fuse_relu(net: ir.Network) -> ir.Network:
    tapped = taps(net)

    def sequence(nodes: Nodes, prefix: str) -> Nodes:
        out: list[ir.Node] = []
        for node in nodes:
            prev = out[-1] if out else None
            if (
                is_layer(node, "relu")
                and is_layer(prev, "conv", "fused_conv")
                and not getattr(prev.op, "relu", False)
                and not (prefix == "" and {prev.name, node.name} & tapped)
            ):
                op = as_fused(prev, ir.join(prefix, prev.name)).model_copy(update={"relu": True})
                out[-1] = with_op(prev, op)
                continue
            out.append(node)
        return tuple(out)

    return rewrite_network(net, sequence, "fuse_relu")
