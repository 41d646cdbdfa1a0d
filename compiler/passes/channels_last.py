"""Run the whole deploy model in the channels_last (NHWC) memory format.

Nothing in the graph changes: the network records the format, and the
runtime module keeps its weights and converts its input to it. On CPU,
oneDNN's convolutions and pools run NHWC natively; in NCHW every
convolution reorders its input and output.
"""

from __future__ import annotations

from compiler import ir


def channels_last(net: ir.Network) -> ir.Network:
    return net.model_copy(
        update={"memory_format": "channels_last", "passes": (*net.passes, "channels_last")}
    )
