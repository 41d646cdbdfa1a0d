"""Fold batch norm into the convolution before it (deploy only: uses the running
statistics, so it holds in eval mode).

A ``conv`` followed, in the same sequence, by a ``batchnorm`` (a conditional one
too, where its condition holds in this build) becomes one
``fused_conv`` named like the conv, whose ``ConvSource`` records the conv's
and the batch norm's module paths and the eps: the weights are folded when a
training checkpoint is loaded, not here.
"""

from __future__ import annotations

from typing import TypeGuard

from compiler import ir
from compiler.passes.rewrite import Nodes, as_fused, is_layer, rewrite_network, taps, with_op


def foldable(node: ir.Node | None) -> TypeGuard[ir.Layer]:
    """A plain convolution, or a fused one of one source with nothing folded or fused after it."""
    if is_layer(node, "conv"):
        return True
    if not is_layer(node, "fused_conv"):
        return False
    op = node.op
    assert isinstance(op, ir.FusedConv)
    return len(op.sources) == 1 and op.sources[0].bn is None and not op.relu


def fold_bn(net: ir.Network) -> ir.Network:
    tapped = taps(net)

    def sequence(nodes: Nodes, prefix: str) -> Nodes:
        out: list[ir.Node] = []
        for node in nodes:
            prev = out[-1] if out else None
            if (
                isinstance(node, ir.Layer)
                and isinstance(node.op, ir.BatchNorm)
                and (node.guard is None or net.enabled(node.guard))  # conditional: when on
                and foldable(prev)
                and not (prefix == "" and {prev.name, node.name} & tapped)
            ):
                fused = as_fused(prev, ir.join(prefix, prev.name))
                source = fused.sources[0].model_copy(
                    update={"bn": ir.join(prefix, node.name), "eps": node.op.eps}
                )
                op = fused.model_copy(update={"bias": True, "sources": (source,)})
                out[-1] = with_op(prev, op)
                continue
            out.append(node)
        return tuple(out)

    return rewrite_network(net, sequence, "fold_bn")
