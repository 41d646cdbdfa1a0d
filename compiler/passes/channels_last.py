"""Run the whole deploy model in the channels_last (NHWC) memory format.

Nothing in the graph changes: the network records the format, and the
runtime module keeps its weights and converts its input to it. On CPU,
oneDNN's convolutions and pools run NHWC natively; in NCHW every
convolution reorders its input and output.

Except where PyTorch's NHWC convolution kernel crashes (SIGSEGV, torch 2.13 CPU):
seen with a dilated convolution whose padding is at least its dilated kernel
extent and a stride other than 1, on a tiny input (``input 3x1x1`` with
``conv(4, 1, stride=(1, 2), padding=1, dilation=2)``). A network with such a
convolution stays NCHW (``compiler.shapes.onednn_unsafe``; tests/test_hardening.py
runs the crashing shapes in a subprocess).
"""

from __future__ import annotations

from compiler import ir
from compiler.shapes import onednn_unsafe


def channels_last(net: ir.Network) -> ir.Network:
    convs = (layer.op for _, layer in ir.layers(net.body) if layer.op.op in ("conv", "fused_conv"))
    if any(onednn_unsafe(op) for op in convs):
        return net
    return net.model_copy(
        update={"memory_format": "channels_last", "passes": (*net.passes, "channels_last")}
    )
