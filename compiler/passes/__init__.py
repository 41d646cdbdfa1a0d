"""IR -> IR optimisation passes for deploy builds, and the pipeline that runs them.

Each pass is a pure function ``Network -> Network`` that returns new frozen
nodes; each can run alone. Fused nodes record where their weights come from
in a training checkpoint (``ir.ConvSource``), so a deploy model loads an
ordinary checkpoint of the unoptimised model and transforms it at load time
(the runtime's ``load_training_checkpoint``; generated code does the same).

``optimise`` runs them in ``PASSES`` order; every pass can be switched off
by name (CLI: ``--no-fold-bn`` ...).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from compiler import ir, no_gc
from compiler.passes.channels_last import channels_last
from compiler.passes.drop_unused import drop_unused
from compiler.passes.fold_bn import fold_bn
from compiler.passes.fuse_relu import fuse_relu
from compiler.passes.fuse_siblings import fuse_siblings
from compiler.passes.rewrite import verify

Pass = Callable[[ir.Network], ir.Network]

# In the order they run: batch norm and ReLU are fused into their convolution
# before sibling convolutions are fused, so that they travel with it.
PASSES: dict[str, Pass] = {
    "drop_unused": drop_unused,
    "fold_bn": fold_bn,
    "fuse_relu": fuse_relu,
    "fuse_siblings": fuse_siblings,
    "channels_last": channels_last,
}

DESCRIPTIONS: dict[str, str] = {
    "drop_unused": "drop aux heads, dropout and switched-off layers",
    "fold_bn": "fold batch norm into the convolution before it",
    "fuse_relu": "fuse ReLU into the convolution before it",
    "fuse_siblings": "fuse sibling 1x1 convolutions on one input into one",
    "channels_last": "use the channels_last memory format for the whole model",
}

# Passes that do not pay on a target, as measured (bench/deploy_speed.py): an ONNX
# graph has no memory format, and onnxruntime's blocked (NCHWc) convolutions
# reorder a fused 1x1 output before splitting it (7% slower at batch 16).
TARGETS: dict[str, frozenset[str]] = {
    "runtime": frozenset(),
    "onnx": frozenset({"channels_last", "fuse_siblings"}),
}

__all__ = [
    "DESCRIPTIONS",
    "PASSES",
    "TARGETS",
    "channels_last",
    "drop_unused",
    "fold_bn",
    "fuse_relu",
    "fuse_siblings",
    "optimise",
    "verify",
]


def optimise(net: ir.Network, disable: Iterable[str] = (), target: str = "runtime") -> ir.Network:
    """The deploy build of ``net`` for ``target`` (PyTorch, the runtime or
    generated module; or ``"onnx"``): every pass but those in ``disable`` and
    those that do not pay on the target (``TARGETS``), in order."""
    disable = set(disable)
    unknown = disable - PASSES.keys()
    if unknown:
        raise ValueError(f"unknown pass {', '.join(sorted(unknown))}; passes: {', '.join(PASSES)}")
    if target not in TARGETS:
        raise ValueError(f"unknown target {target}; targets: {', '.join(TARGETS)}")
    disable |= TARGETS[target]
    with no_gc():
        for name, run in PASSES.items():
            if name not in disable:
                net = run(net)
                verify(net)
    return net
